"""The live consumer's fetch wait: Faust's hard-coded 1,500 ms replaced before it starts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from streams import fetch_wait
from streams.app import create_app
from streams.settings import Settings


def created_wait(tmp_path: Path, wait_ms: int | None) -> int:
    """The fetch wait of the aiokafka consumer Faust's consumer thread creates (not started:
    no broker is needed to build it)."""

    async def build() -> int:
        app = create_app(Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path)).app
        if wait_ms is not None:
            assert fetch_wait.install(app, wait_ms)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    return asyncio.run(build())


def test_faust_waits_1500_ms_unless_told(tmp_path: Path) -> None:
    # The premise of streams/fetch_wait.py: if Faust ever makes it configurable, use that.
    assert created_wait(tmp_path, None) == 1500


def test_installed_wait_reaches_the_consumer(tmp_path: Path) -> None:
    assert created_wait(tmp_path, 100) == 100


def test_another_driver_is_left_alone() -> None:
    app = SimpleNamespace(consumer=SimpleNamespace())
    assert fetch_wait.install(app, 100) is False


def test_default_setting() -> None:
    assert Settings().consumer_fetch_wait_ms == 100
