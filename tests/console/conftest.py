"""The console's end-to-end fixtures: one worker fed by generated traffic for the whole module,
and Debian's chromium driven by Playwright (skipped, saying why, when it is not installed)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from streams.broker.launcher import free_port
from streams.generator.build import Generated, generate
from streams.generator.config import GeneratorConfig, parse_mix
from streams.generator.output import produce_to_kafka
from streams.generator.thresholds import DAY_MS, HOUR_MS
from streams.procs import ChildProcess, fstreams
from streams.settings import Settings
from streams.topics import TopicNames
from tests.agents.conftest import worker_env
from tests.kafka_helpers import wait_for_zero_lag

T = TypeVar("T")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update",
                 "--disable-sync"]
# Money and SLA faults over-represented so a short run fires alerts and opens mismatches.
MIX = "happy=0.25"
START_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
GRACE_MS = 30 * DAY_MS


@dataclass
class Stack:
    url: str
    settings: Settings
    generated: Generated
    worker: ChildProcess
    client: httpx.Client

    def body(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, (path, params, response.text)
        return response.json()

    def settled(self, observe: Callable[[], T], timeout: float = 30.0) -> T:
        """`observe()` once it is not empty and two reads a second apart agree: the worker
        may still be firing its last timers or closing metric windows after the inputs are
        read."""
        deadline = time.monotonic() + timeout
        last = observe()
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = observe()
            if now == last and now:
                return now
            if not self.worker.running:
                raise RuntimeError(f"worker died{self.worker._log_hint()}")
            last = now
        raise TimeoutError(f"still changing after {timeout}s: {last!r}")


def chromium_path() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (`make browser` installs it with "
                    "apt-get; it failed or was not run), so the console cannot be driven")
    pytest.importorskip("playwright.sync_api", reason="playwright (test extra) not installed")
    return path


@pytest.fixture(scope="package")
def stack(kafka_bootstrap: str, registry_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker for every console test, having read a short generated traffic run with
    firing alerts, open mismatches and closed metric windows to show.

    Metric windows are published once stream time passes their end plus grace. Traffic made
    in bulk reaches the metrics agent out of event-time order, so the grace is long (nothing
    of the first run is late) and a few orders two months later close its windows."""
    name = f"console-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path_factory.mktemp("console")
    settings = Settings(bootstrap_servers=kafka_bootstrap, registry_url=registry_url,
                        topic_prefix=f"{name}-", app_id=name, data_dir=data_dir, partitions=4)
    names = TopicNames.with_prefix(settings.topic_prefix)
    port = free_port()
    worker = ChildProcess("worker-1", fstreams("worker"), env=worker_env(
        settings, port=port, FSTREAMS_METRICS_GRACE_MS=str(GRACE_MS)),
        log_path=data_dir / "worker-1.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        generated = generate(GeneratorConfig(orders=80, seed=1212, mix=parse_mix(MIX),
                                             start_ms=START_MS))
        later = generate(GeneratorConfig(orders=3, seed=1213, start_ms=START_MS + 60 * DAY_MS,
                                         span_ms=HOUR_MS, bad_records=0))
        for run in (generated, later):
            produce_to_kafka(run.events, bootstrap=settings.bootstrap_servers,
                             registry_url=settings.registry_url,
                             topic_prefix=settings.topic_prefix, partitions=settings.partitions)
            wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                              workers=[worker])
        with httpx.Client(base_url=url, timeout=15.0) as client:
            yield Stack(url, settings, generated, worker, client)
    finally:
        worker.kill()  # its topics and data are thrown away: no clean shutdown to wait for


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A laptop-sized page; any script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield new_page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
