"""`GET /overview` (the whole cluster, for the console) and `GET /overview/local` (this
worker's part of it).

The answering worker finds its peers where Faust's table routing does: in the group
assignment's metadata (`app.router.table_metadata`: worker URL -> order-table partitions),
asks each peer for its local part and merges the parts (`streams.overview.merge_parts`).
Dead letters are counted in the dead-letter topic itself (records it retains), which is the
same from any worker and survives restarts. A peer that does not answer is reported under
`workers` with its error and its partitions under `partitions_missing`; the answer is still
200, so the console can show what is known.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from confluent_kafka import Consumer, TopicPartition
from faust.web import Request, Response, View
from yarl import URL

from streams import overview
from streams.app import Pipeline
from streams.lag import input_lag
from streams.topics import ORDER_STATE_TABLE, changelog_topic
from streams.web.health import is_ready

log = logging.getLogger(__name__)
PEER_TIMEOUT_S = 3.0
DEAD_LETTER_CACHE_S = 1.0  # a console polling every second costs the broker one query


class DeadLetterCount:
    """Records the dead-letter topic holds (end - start offsets of every partition)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic = topic
        self._conf = {"bootstrap.servers": bootstrap, "group.id": group,
                      "enable.auto.commit": False}
        self._consumer: Consumer | None = None
        self._cached: tuple[float, int] | None = None

    async def count(self) -> int | None:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < DEAD_LETTER_CACHE_S:
            return cached[1]
        try:
            n = await asyncio.to_thread(self._query)
        except Exception as exc:  # broker unreachable: say unknown, never fail the overview
            log.warning("cannot count dead letters", extra={"topic": self.topic,
                                                            "error": str(exc)})
            return None
        self._cached = (time.monotonic(), n)
        return n

    def _query(self) -> int:
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        consumer = self._consumer
        meta = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if meta is None or meta.error is not None:
            return 0  # not created yet: nothing was dead-lettered
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5)
            total += max(0, high - low)
        return total

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def _same_url(a: str, b: str) -> bool:
    ua, ub = URL(a), URL(b)
    return (ua.host, ua.port) == (ub.host, ub.port)


def local_part(pipeline: Pipeline, meter: overview.RateMeter) -> dict[str, Any]:
    """What this worker knows first-hand."""
    app = pipeline.app
    censuses = overview.local_censuses(pipeline)
    lag = input_lag(app, pipeline.names.inputs, pipeline.services.get("positions", {}))
    counters = pipeline.services.get("counters", {})
    return {
        "worker_id": pipeline.settings.worker_id,
        "url": str(app.conf.canonical_url),
        "partitions": sorted(censuses),
        "census": {str(p): census for p, census in censuses.items()},
        "events_consumed": overview.consumed_total(pipeline),
        "events_per_second": round(meter.rate(), 1),
        "consumer_lag": sum(lag.values()),
        "dead_lettered": counters.get("dead_lettered", 0),
        "ready": is_ready(pipeline),
        "as_of": overview.now_ms(),
    }


class Overview:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.meter = overview.RateMeter()
        settings = pipeline.settings
        self.dead_letters = DeadLetterCount(settings.bootstrap_servers,
                                            pipeline.names.dead_letters,
                                            f"{settings.app_id}-overview")
        self.table_name = ORDER_STATE_TABLE
        self.changelog = changelog_topic(settings.app_id, ORDER_STATE_TABLE)

    def sample(self) -> None:
        self.meter.sample(time.monotonic(), overview.consumed_total(self.pipeline))

    def local(self) -> dict[str, Any]:
        return local_part(self.pipeline, self.meter)

    def owners(self) -> dict[str, list[int]]:
        """Worker URL -> order-table partitions it owns, per the group's assignment."""
        app = self.pipeline.app
        try:
            metadata = app.router.table_metadata(self.table_name)
        except Exception:  # no assignment yet
            return {}
        return {str(url): sorted(topics.get(self.changelog, []))
                for url, topics in metadata.items()}

    async def cluster(self) -> dict[str, Any]:
        pipeline = self.pipeline
        own_url = str(pipeline.app.conf.canonical_url)
        owners = self.owners()
        if not any(_same_url(url, own_url) for url in owners):
            owners[own_url] = []  # not in the assignment yet: still say what we know
        urls = sorted(owners)
        answers = await asyncio.gather(*(self._part(url, own_url) for url in urls))
        parts = [part for part in answers if "error" not in part]
        by_partition = {p: url for url, partitions in owners.items() for p in partitions}
        body = overview.merge_parts(parts, by_partition, pipeline.settings.partitions)
        dead = await self.dead_letters.count()
        if dead is None:  # the broker did not answer: what the workers counted since start
            dead = sum(part.get("dead_lettered", 0) for part in parts)
        workers = []
        for url, answer in zip(urls, answers, strict=True):
            worker: dict[str, Any] = {"id": answer.get("worker_id"), "url": url,
                                      "partitions": owners[url] or answer.get("partitions", [])}
            if "error" in answer:
                worker["error"] = answer["error"]
            else:
                worker.update(ready=answer["ready"],
                              events_per_second=answer["events_per_second"],
                              consumer_lag=answer["consumer_lag"])
            workers.append(worker)
        return {
            "orders_by_status": body["orders_by_status"],
            "orders_total": body["orders_total"],
            "events_per_second": body["events_per_second"],
            "consumer_lag": body["consumer_lag"],
            "dead_letters": dead,
            "firing_alerts": body["firing_alerts"],
            "workers": workers,
            "partitions_missing": body["partitions_missing"],
            "complete": body["complete"],
            "as_of": overview.now_ms(),
        }

    async def _part(self, url: str, own_url: str) -> dict[str, Any]:
        if _same_url(url, own_url):
            return {**self.local(), "url": url}
        target = str(URL(url).with_path("/overview/local"))
        try:
            timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
            async with self.pipeline.app.http_client.get(target, timeout=timeout) as resp:
                if resp.status != 200:
                    return {"error": f"HTTP {resp.status} from {target}"}
                part: dict[str, Any] = await resp.json()
                part["url"] = url  # as the assignment names it, for ownership
                return part
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    service = Overview(pipeline)
    pipeline.services["overview"] = service

    @app.timer(1.0, name="overview.rate")
    async def sample_rate() -> None:
        service.sample()

    @app.on_before_shutdown.connect
    async def _close(app: Any, **kwargs: Any) -> None:
        service.dead_letters.close()

    @app.page("/overview/local", name="overview_local")
    async def overview_local(view: View, request: Request) -> Response:
        return view.json(service.local())

    @app.page("/overview", name="overview")
    async def cluster_overview(view: View, request: Request) -> Response:
        return view.json(await service.cluster())
