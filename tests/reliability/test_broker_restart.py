"""The broker itself is SIGKILLed mid-stream and restarted on the same ports and data: the
worker and the registry reconnect, and the worker finishes with the pure oracle's verdicts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.broker.launcher import EmbeddedKafka
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.settings import Settings
from tests.kafka_helpers import wait_for_zero_lag
from tests.reliability.conftest import FAST_GROUP
from tests.reliability.support import (
    RegistryProcess,
    assert_live_equals_oracle,
    input_progress,
    names_of,
    produce,
    wait_for,
    worker_process,
)

pytestmark = [
    pytest.mark.broker,
    # Two broker JVM starts plus a registry: ~40 s on an idle 2-core machine, 50-85 s loaded.
    # Part of `make test`; FSTREAMS_TEST_SKIP_BROKER_RESTART=1 leaves it out of a quick loop.
    pytest.mark.skipif(bool(os.environ.get("FSTREAMS_TEST_SKIP_BROKER_RESTART")),
                       reason="FSTREAMS_TEST_SKIP_BROKER_RESTART is set"),
]


def test_broker_killed_and_restarted_mid_stream(tmp_path: Path) -> None:
    """kill -9 the (dedicated) broker after the worker committed part of the input, restart
    it, send the rest: the worker catches up without a restart of its own."""
    with EmbeddedKafka(heap="512m") as kafka:
        registry = RegistryProcess(kafka.bootstrap, tmp_path / "registry.log").start()
        settings = Settings(bootstrap_servers=kafka.bootstrap, registry_url=registry.url,
                            topic_prefix="restart-", app_id="restart", data_dir=tmp_path,
                            partitions=4)
        events = generate(GeneratorConfig(orders=60, seed=12)).events
        half = len(events) // 2
        produce(settings, events[:half])
        worker = worker_process(settings, "worker-1", tmp_path / "worker.log", **FAST_GROUP)
        try:
            wait_for("committing input", lambda: input_progress(settings)[0] > 0,
                     workers=[worker])
            kafka.kill()
            kafka.restart()
            produce(settings, events[half:])
            wait_for_zero_lag(settings.bootstrap_servers, settings.app_id,
                              names_of(settings).inputs, timeout=180, workers=[worker])
            assert registry.child.running
            assert_live_equals_oracle(settings)
        finally:
            worker.stop()
            registry.stop()
