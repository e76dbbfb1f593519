"""Test support for alerting: SlaAlert records on a real topic, a real local webhook receiver,
and bounded polling (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.producer import producer_config, record_key
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireEncoder
from streams.settings import Settings
from streams.topics import TopicNames
from tables.alerts import fingerprint

START_MS = 1_760_000_000_000


def alert(order_id: str, state: str = "firing", *, rule: str = "ship_by_breached",
          severity: str = "critical", warehouse: str = "wms-east") -> dict[str, Any]:
    """An SlaAlert record as tables.alerts emits it (fingerprint from rule and order)."""
    return {
        "fingerprint": fingerprint(rule, {}, order_id),
        "rule": rule,
        "severity": severity,
        "state": state,
        "starts_at": START_MS,
        "ends_at": START_MS + 60_000 if state == "resolved" else None,
        "summary": f"Order {order_id} not fully shipped by its promised ship-by",
        "description": "test alert",
        "labels": {"channel": "web", "warehouse": warehouse},
        "order_id": order_id,
        "correlation_id": f"corr-{order_id}",
        "runbook_url": f"runbooks/{rule}.md",
    }


def sla_topic(settings: Settings) -> str:
    return TopicNames.with_prefix(settings.topic_prefix).sla_alerts


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                  replication_factor=1)])[topic].result(timeout=15)


def produce_alerts(settings: Settings, records: list[dict[str, Any]]) -> None:
    """Our WireEncoder under subject <topic>-value, keyed like the product (order_id)."""
    topic = sla_topic(settings)
    encoder = WireEncoder.for_topic(RegistrySchemaSource.from_settings(settings), topic,
                                    "SlaAlert")
    producer = Producer(producer_config(settings.bootstrap_servers))
    for record in records:
        producer.produce(topic, key=record_key("SlaAlert", record), value=encoder.encode(record))
    assert producer.flush(15) == 0


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    status: int
    at: float  # time.monotonic() when it arrived


@dataclass
class WebhookReceiver:
    """A real HTTP server on a free loopback port. ``respond(body)`` picks each status."""

    respond: Callable[[dict[str, Any]], int] = lambda _body: 200
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = self.respond(body)
        self.requests.append(Request(request.path, body, status, time.monotonic()))
        return web.json_response({"status": "ok" if status < 300 else "error"}, status=status)

    def accepted(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.status < 300]


def fails_first(n: int, status: int = 500) -> Callable[[dict[str, Any]], int]:
    """Answer ``status`` to the first ``n`` requests, then 200."""
    seen = [0]

    def respond(_body: dict[str, Any]) -> int:
        seen[0] += 1
        return status if seen[0] <= n else 200

    return respond


async def wait_until(check: Callable[[], bool | Awaitable[bool]], *, timeout: float = 20.0,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout}s")
