"""Session-wide fixtures: one real Apache Kafka broker per test run, unique names per test."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest

from streams.broker.launcher import EmbeddedKafka, free_port
from streams.procs import ChildProcess, http_ok


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedKafka]:
    """The one broker of this test session (a JVM), stopped even when tests fail."""
    broker = EmbeddedKafka(heap="1g")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of the session broker.

    FSTREAMS_TEST_BOOTSTRAP reuses a broker that is already running (handy while iterating on
    one test); otherwise the session's own embedded broker is started on first use.
    """
    external = os.environ.get("FSTREAMS_TEST_BOOTSTRAP")
    if external:
        return external
    broker: EmbeddedKafka = request.getfixturevalue("kafka")
    return broker.bootstrap


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, safe for topics, groups and subjects."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def registry_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `python -m registry` process on the session broker, shared by the session."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("registry") / "registry.log"
    registry = ChildProcess("registry", [sys.executable, "-m", "registry"], env={
        "FSTREAMS_REGISTRY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FSTREAMS_REGISTRY_PORT": str(port),
        "FSTREAMS_REGISTRY_TOPIC": f"_schemas-{uuid.uuid4().hex[:8]}",
    }, log_path=log_path).start()
    try:
        registry.wait_until(lambda: http_ok(f"{url}/_ready"), timeout=90, what="ready")
        yield url
    finally:
        registry.stop()
