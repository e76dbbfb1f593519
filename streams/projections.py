"""Every worker's view of all SLA alerts, reconciliation mismatches and silences.

The order table is partitioned across workers, but ``GET /alerts`` and ``/mismatches`` must
answer for every order on any worker. So each worker tails ``sla-alerts``,
``reconciliation-mismatches`` and the silences topic over *all* partitions (no consumer
group: ``streams.topic_tail``) and keeps the latest record per key in memory
(``streams.projection_store``: every live one, resolved ones for a bounded window).

Ready once it has read up to the end offsets the topics had when it started; until then the
endpoints answer 503. Reading and decoding run in a thread so a catch-up over a long history
never blocks the event loop the agents share; records are applied on the loop, where the
handlers read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from confluent_kafka import Message

from streams.alerting.silences import ensure_silences_topic, from_json, silences_topic
from streams.app import Pipeline
from streams.projection_store import ALERT, MISMATCH, CatchUp, LatestRecords, Retention
from streams.schema_source import RegistryUnavailable, SchemaSource
from streams.serde import DecodeError, WireDecoder
from streams.settings import Settings
from streams.topic_tail import TopicTail
from streams.topics import TopicNames
from tables.alerts import Silence

log = logging.getLogger(__name__)
SERVICE = "projection"
_RETRY_S = 2.0
_STOP_WAIT_S = 5.0
# (topic, key, decoded record | Silence | None for a tombstone)
Decoded = tuple[str, str, Any]


class Projection:
    def __init__(self, settings: Settings, names: TopicNames, source: SchemaSource) -> None:
        retention = Retention(settings.projection_resolved_retention_ms,
                              settings.projection_max_resolved)
        self.settings = settings
        self.alerts = LatestRecords(ALERT, retention)
        self.mismatches = LatestRecords(MISMATCH, retention)
        self.silences: dict[str, Silence] = {}
        self.undecodable = 0
        self.catch_up: CatchUp | None = None
        self.alerts_topic = names.sla_alerts
        self.mismatches_topic = names.reconciliation_mismatches
        self.silences_topic = silences_topic(settings)
        # Used only from the tail's thread (decoders are not thread-safe).
        self._decoders = {self.alerts_topic: WireDecoder.for_record(source, "SlaAlert"),
                          self.mismatches_topic: WireDecoder.for_record(
                              source, "ReconciliationMismatch")}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.catch_up is not None and self.catch_up.done

    def progress(self) -> dict[str, Any]:
        """What the projection still waits for (for a 503 body and logs)."""
        waiting = [] if self.catch_up is None else self.catch_up.waiting_for
        return {"started": self.catch_up is not None,
                "partitions_left": [f"{t}[{p}]" for t, p in waiting]}

    # --- writes the API makes, seen here at once (the tail sees them a moment later) ---

    def silence_added(self, silence: Silence) -> None:
        self.silences[silence.silence_id] = silence

    def silence_expired(self, silence_id: str) -> None:
        self.silences.pop(silence_id, None)

    # --- lifecycle ---

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=SERVICE)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, _STOP_WAIT_S)

    async def _run(self) -> None:
        tail = await self._open()
        if tail is None:
            return
        catch_up = self.catch_up = CatchUp(tail.ends)
        started, announced = time.monotonic(), False
        try:
            while not self._stopping:
                try:
                    batch = await asyncio.to_thread(self._read, tail)
                    for topic, key, value in batch:
                        self._apply(topic, key, value)
                    if not catch_up.done:
                        for tp, position in (await asyncio.to_thread(tail.positions)).items():
                            catch_up.reached(tp, position)
                except Exception:  # a query view must never die quietly: say so, go on
                    log.exception("projection step failed; retrying")
                    await asyncio.sleep(_RETRY_S)
                    continue
                if catch_up.done and not announced:
                    announced = True
                    log.info("alert and mismatch projection caught up", extra={
                        "seconds": round(time.monotonic() - started, 2),
                        "alerts": len(self.alerts), "mismatches": len(self.mismatches),
                        "silences": len(self.silences)})
        finally:
            await asyncio.to_thread(tail.close)

    async def _open(self) -> TopicTail | None:
        settings = self.settings
        topics = (self.alerts_topic, self.mismatches_topic, self.silences_topic)
        while not self._stopping:
            try:
                return await asyncio.to_thread(self._open_tail, settings, topics)
            except Exception as exc:  # broker not reachable yet: keep trying, stay not-ready
                log.warning("projection cannot open its topics; retrying", extra={
                    "error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(_RETRY_S)
        return None

    @staticmethod
    def _open_tail(settings: Settings, topics: tuple[str, ...]) -> TopicTail:
        ensure_silences_topic(settings.bootstrap_servers, topics[-1],
                              settings.replication_factor)
        return TopicTail(settings.bootstrap_servers, topics,
                         client_id=f"{settings.worker_id}-projection")

    # --- in the tail's thread ---

    def _read(self, tail: TopicTail) -> list[Decoded]:
        out: list[Decoded] = []
        for msg in tail.poll():
            if msg.error() is not None:  # librdkafka retries by itself: log and go on
                log.warning("projection read error", extra={"error": str(msg.error())})
                continue
            decoded = self._decode(msg)
            if decoded is not None:
                out.append(decoded)
        return out

    def _decode(self, msg: Message) -> Decoded | None:
        topic, key, value = msg.topic() or "", (msg.key() or b"").decode(errors="replace"), \
            msg.value()
        if topic == self.silences_topic:
            if value is None:
                return topic, key, None
            try:
                return topic, key, from_json(value)
            except (ValueError, KeyError, TypeError):
                return None  # a hand-written record must not break the projection
        if value is None:
            return None
        delay = 0.5
        while True:
            try:
                return topic, key, self._decoders[topic].decode(value)
            except DecodeError:
                self.undecodable += 1
                return None
            except RegistryUnavailable:  # the record is fine, its schema is out of reach
                if self._stopping:
                    return None
                log.warning("projection waits for the schema registry", extra={
                    "topic": topic, "offset": msg.offset()})
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_S * 2)

    # --- on the loop ---

    def _apply(self, topic: str, key: str, value: Any) -> None:
        if topic == self.silences_topic:
            if value is None:
                self.silences.pop(key, None)
            else:
                self.silences[key] = value
        elif topic == self.alerts_topic:
            self.alerts.put(value)
        else:
            self.mismatches.put(value)


def attach(pipeline: Pipeline) -> Projection:
    """The worker's projection, created and hooked to the app's start and stop once."""
    found: Projection | None = pipeline.services.get(SERVICE)
    if found is not None:
        return found
    projection = Projection(pipeline.settings, pipeline.names,
                            pipeline.services["schema_source"])
    pipeline.services[SERVICE] = projection

    @pipeline.app.task
    async def _start_projection() -> None:
        projection.start()

    @pipeline.app.on_before_shutdown.connect
    async def _stop_projection(app: Any, **kwargs: Any) -> None:
        await projection.stop()
    return projection
