"""Worker processes for agent tests: real `fstreams worker` children on the session broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.broker.launcher import free_port
from streams.procs import ChildProcess, fstreams
from streams.settings import Settings

StartWorker = Callable[..., ChildProcess]


@pytest.fixture
def app_settings(kafka_bootstrap: str, registry_url: str, unique_name: str,
                 tmp_path: Path) -> Settings:
    """Settings of an isolated application: own topics (prefix), group, data dir."""
    return Settings(bootstrap_servers=kafka_bootstrap, registry_url=registry_url,
                    topic_prefix=f"{unique_name}-", app_id=unique_name, data_dir=tmp_path,
                    partitions=4)


@pytest.fixture
def start_worker(app_settings: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    workers: list[ChildProcess] = []

    def start(worker_id: str = "worker-1", **env: str) -> ChildProcess:
        s = app_settings
        child = ChildProcess(worker_id, fstreams("worker"), env={
            "FSTREAMS_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "FSTREAMS_REGISTRY_URL": s.registry_url,
            "FSTREAMS_TOPIC_PREFIX": s.topic_prefix,
            "FSTREAMS_APP_ID": s.app_id,
            "FSTREAMS_DATA_DIR": str(s.data_dir),
            "FSTREAMS_PARTITIONS": str(s.partitions),
            "FSTREAMS_WORKER_ID": worker_id,
            "FSTREAMS_WEB_PORT": str(free_port()),
            **env,
        }, log_path=tmp_path / f"{worker_id}.log").start()
        workers.append(child)
        return child

    yield start
    for worker in workers:
        worker.stop()
