"""Worker processes for agent tests: real `fstreams worker` children on the session broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.broker.launcher import free_port
from streams.procs import ChildProcess, fstreams
from streams.settings import Settings

StartWorker = Callable[..., ChildProcess]


def worker_env(settings: Settings, worker_id: str = "worker-1", port: int | None = None,
               **extra: str) -> dict[str, str]:
    """The environment of an `fstreams worker` of `settings`' application."""
    return {
        "FSTREAMS_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "FSTREAMS_REGISTRY_URL": settings.registry_url,
        "FSTREAMS_TOPIC_PREFIX": settings.topic_prefix,
        "FSTREAMS_APP_ID": settings.app_id,
        "FSTREAMS_DATA_DIR": str(settings.data_dir),
        "FSTREAMS_PARTITIONS": str(settings.partitions),
        "FSTREAMS_WORKER_ID": worker_id,
        "FSTREAMS_WEB_PORT": str(port if port is not None else free_port()),
        **extra,
    }


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
        child = ChildProcess(worker_id, fstreams("worker"),
                             env=worker_env(app_settings, worker_id, **env),
                             log_path=tmp_path / f"{worker_id}.log").start()
        workers.append(child)
        return child

    yield start
    for worker in workers:
        worker.stop()
