"""Registry fixtures: real ``python -m registry`` processes against the session's Kafka broker.

Processes are expensive (about a second each), so the common one is shared by the whole session
and tests isolate themselves with unique subject names; tests that change global settings,
restart or run several instances start their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_helpers import CT, RegistryProcess, StartRegistry


@pytest.fixture(scope="session")
def registry_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-logs")


@pytest.fixture(scope="session")
def start_registry(
    kafka_bootstrap: str, registry_logs: Path
) -> Iterator[StartRegistry]:
    """Factory: start a registry process (stopped at session end if still running)."""
    started: list[RegistryProcess] = []

    def start(topic: str | None = None, **kwargs: object) -> RegistryProcess:
        topic = topic or f"_schemas-{uuid.uuid4().hex[:10]}"
        proc = RegistryProcess(kafka_bootstrap, topic, registry_logs, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def registry(start_registry: StartRegistry) -> RegistryProcess:
    """The shared registry: tests use unique subjects and leave global settings alone."""
    return start_registry()


@pytest.fixture(scope="session")
def registry_url(registry: RegistryProcess) -> str:
    return registry.url


@pytest.fixture
def http(registry_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry_url, headers={"Content-Type": CT}, timeout=30) as client:
        yield client


@pytest.fixture
def subject() -> str:
    return f"subj-{uuid.uuid4().hex[:12]}"


