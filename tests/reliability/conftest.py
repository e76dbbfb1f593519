"""Fixtures of the reliability tests: the agent tests' isolated app and workers, with a short
consumer-group session so a SIGKILLed member leaves the group in seconds, not a minute."""

from __future__ import annotations

import pytest

from streams.procs import ChildProcess
from tests.agents.conftest import StartWorker, app_settings, start_worker  # noqa: F401

# Faust reads these from the environment; the product's defaults (60 s session) are meant for
# production, where a crashed worker's partitions wait out the session before moving.
FAST_GROUP = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}


@pytest.fixture
def start(start_worker: StartWorker) -> StartWorker:  # noqa: F811
    """`start_worker` with the short group session."""

    def go(worker_id: str = "worker-1", **env: str) -> ChildProcess:
        return start_worker(worker_id, **{**FAST_GROUP, **env})

    return go
