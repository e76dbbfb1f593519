"""Fixtures for alerting tests: isolated topics per test, a webhook receiver, delivery runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from streams.alerting.config import AlertingConfig
from streams.alerting.delivery import run_delivery
from streams.alerting.receivers import receivers_from_config
from streams.alerting.stats import DeliveryStats
from streams.settings import Settings
from tests.alerting.support import WebhookReceiver, create_topic, sla_topic
from tests.kafka_helpers import committed_offsets, end_offsets

# Records are produced before delivery starts, so new groups start at the beginning.
FAST = {"start_from": "earliest", "backoff_initial_s": 0.05, "backoff_max_s": 0.2,
        "silences_refresh_s": 0.5, "request_timeout_s": 5.0}


@pytest.fixture
def alert_settings(kafka_bootstrap: str, registry_url: str, unique_name: str) -> Settings:
    """Own topics (prefix) and own consumer groups (app_id) for this test."""
    settings = Settings(bootstrap_servers=kafka_bootstrap, registry_url=registry_url,
                        topic_prefix=f"{unique_name}-", app_id=unique_name)
    create_topic(kafka_bootstrap, sla_topic(settings))
    return settings


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    try:
        yield receiver
    finally:
        await receiver.stop()


class DeliveryRun:
    def __init__(self, settings: Settings, config: AlertingConfig) -> None:
        self.settings = settings
        self.config = config
        self.stats = DeliveryStats()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[DeliveryStats] | None = None

    def groups(self) -> list[str]:
        base = self.config.consumer_group(self.settings.app_id)
        return [f"{base}.{r.name}" for r in receivers_from_config(self.config)]

    def caught_up(self) -> bool:
        """Every receiver's group committed the end of sla-alerts (all records finished)."""
        ends = end_offsets(self.settings.bootstrap_servers, [sla_topic(self.settings)])
        wanted = {tp: end for tp, end in ends.items() if end > 0}
        return all(all(committed_offsets(self.settings.bootstrap_servers, group).get(tp, 0)
                       >= end for tp, end in wanted.items()) for group in self.groups())

    async def wait_caught_up(self, timeout: float = 20.0) -> None:
        from tests.alerting.support import wait_until

        await wait_until(lambda: self._alive() and asyncio.to_thread(self.caught_up),
                         timeout=timeout, what="delivery caught up")

    def _alive(self) -> bool:
        if self.task is not None and self.task.done():
            self.task.result()  # raises what killed it
            raise AssertionError("delivery stopped early")
        return True


@pytest.fixture
async def deliver(alert_settings: Settings) -> AsyncIterator[Callable[..., DeliveryRun]]:
    """``deliver(**config)`` starts run_delivery as a task; it is stopped after the test."""
    runs: list[DeliveryRun] = []

    def start(**overrides: Any) -> DeliveryRun:
        run = DeliveryRun(alert_settings, AlertingConfig(**{**FAST, **overrides}))
        run.task = asyncio.create_task(run_delivery(alert_settings, run.config, run.stop,
                                                    stats=run.stats))
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop.set()
    for run in runs:
        assert run.task is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run.task, 15)
