"""One receiver's share of delivery: its own consumer group on ``sla-alerts``.

Each receiver consumes in its own group, so a receiver that is down holds back only its own
records, never another receiver's (and never the stream, which is another group entirely).
Partitions are delivered concurrently, records of one partition in order (an alert is keyed by
its order or fingerprint, so its resolve cannot overtake its trigger). While a partition's batch
is being delivered the partition is paused, and the consumer keeps polling, so a receiver down
for an hour does not get the consumer thrown out of its group.

A record's offset is committed once it was delivered, silenced, or given up on; a record in
progress at shutdown or at a rebalance is delivered again later (at least once; PagerDuty
dedups on the fingerprint). A resolve is muted only when this process muted its trigger: after
a restart it is sent, which at worst closes a page that was never opened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from streams.alerting.backoff import Halted, backoff_s, pause
from streams.alerting.breaker import OPEN, CircuitBreaker
from streams.alerting.config import AlertingConfig
from streams.alerting.receivers import Outcome, Receiver, post
from streams.alerting.silence_cache import SilenceCache
from streams.alerting.stats import ReceiverStats
from streams.logs import log_context
from streams.schema_source import RegistryUnavailable
from streams.serde import DecodeError, WireDecoder
from tables.alerts import matching_silence

log = logging.getLogger(__name__)

_SHUTDOWN_GRACE_S = 5.0  # let an HTTP attempt in flight finish before cancelling it
_MAX_RECORDS = 500


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pump: ReceiverPump) -> None:
        self.pump = pump

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.pump.abandon(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(p.partition
                                                                    for p in assigned)})


class ReceiverPump:
    def __init__(self, receiver: Receiver, *, topic: str, group_id: str, bootstrap: str,
                 config: AlertingConfig, session: aiohttp.ClientSession,
                 decoder: WireDecoder, silences: SilenceCache, stats: ReceiverStats,
                 halt: asyncio.Event) -> None:
        self.receiver = receiver
        self.topic = topic
        self.config = config
        self.session = session
        self.decoder = decoder
        self.silences = silences
        self.stats = stats
        self.halt = halt
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_cooldown_s)
        # fingerprint -> "sent" | "silenced": how its latest firing record was handled, so a
        # resolve is muted only when its firing was (never leave a delivered page open).
        self._firing: dict[str, str] = {}
        self._drains: dict[TopicPartition, asyncio.Task[None]] = {}
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, client_id=f"fstreams-{group_id}",
            enable_auto_commit=False, auto_offset_reset=config.start_from,
            metadata_max_age_ms=30_000)  # notice a topic created after start-up soon

    async def run(self) -> None:
        """Deliver until ``halt`` is set; raises when a partition's delivery crashed."""
        self.consumer.subscribe([self.topic], listener=_Revocations(self))
        try:
            await self.consumer.start()
        except BaseException:
            await self.consumer.stop()  # releases its connections; start() does not
            raise
        try:
            while not self.halt.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=_MAX_RECORDS)
                for tp, records in batches.items():
                    if records:
                        self.consumer.pause(tp)  # until this batch is done
                        self._drains[tp] = asyncio.create_task(self._drain(tp, records))
                self._reap()
        finally:
            await self._finish_drains()
            await self.consumer.stop()

    async def abandon(self, partitions: Collection[TopicPartition]) -> None:
        """Partitions moved to another member: stop their deliveries (left uncommitted)."""
        tasks = [t for tp in partitions if (t := self._drains.pop(tp, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _reap(self) -> None:
        for tp, task in list(self._drains.items()):
            if task.done():
                del self._drains[tp]
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _finish_drains(self) -> None:
        tasks = list(self._drains.values())
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._drains.clear()

    async def _drain(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        try:
            for record in records:
                if self.halt.is_set():
                    return
                await self._handle(record)
                await self._commit(tp, record.offset + 1)
        except Halted:
            return
        finally:
            if not self.halt.is_set() and tp in self.consumer.assignment():
                self.consumer.resume(tp)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: offset})
        except KafkaError as exc:  # rebalance in progress, partition moved
            log.warning("offset commit failed; the record may be delivered again",
                        extra={"partition": tp.partition, "offset": offset, "error": str(exc)})

    async def _handle(self, record: ConsumerRecord[Any, Any]) -> None:
        if record.value is None:
            return  # tombstone: nothing to say
        alert = await self._decode(record)
        if alert is None:
            return
        # Every line about this alert (delivered, retried, given up, silenced) carries these.
        with log_context(fingerprint=alert["fingerprint"], rule=alert["rule"],
                         state=alert["state"], order_id=alert.get("order_id"),
                         correlation_id=alert.get("correlation_id"), topic=record.topic,
                         partition=record.partition, offset=record.offset):
            if self._silenced(alert):
                self.stats.silenced += 1
                return
            await self._deliver(alert)

    async def _decode(self, record: ConsumerRecord[Any, Any]) -> dict[str, Any] | None:
        attempt = 0
        while True:
            try:
                schema_id = self.decoder.schema_id_of(record.value)
                if schema_id not in self.decoder.cached_ids:  # registry call: off the loop
                    await asyncio.to_thread(self.decoder.prefetch, schema_id)
                alert = self.decoder.decode(record.value)
            except RegistryUnavailable as exc:  # transient: hold the partition, not skip
                attempt += 1
                log.warning("registry unreachable; holding the partition",
                            extra={"topic": record.topic, "partition": record.partition,
                                   "offset": record.offset, "error": str(exc)})
                await pause(self.halt, backoff_s(attempt, self.config.backoff_initial_s,
                                                 self.config.backoff_max_s))
                continue
            except DecodeError as exc:
                return self._undecodable(record, str(exc))
            if alert.get("state") not in ("firing", "resolved"):
                return self._undecodable(record, f"state {alert.get('state')!r}")
            return alert

    def _undecodable(self, record: ConsumerRecord[Any, Any], why: str) -> None:
        self.stats.undecodable += 1
        key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else None
        log.error("skipping a record that is not a deliverable SlaAlert",
                  extra={"topic": record.topic, "partition": record.partition,
                         "offset": record.offset, "key": key, "error": why})
        return None

    def _silenced(self, alert: dict[str, Any]) -> bool:
        fp = alert["fingerprint"]
        if alert["state"] == "resolved":
            return self._firing.pop(fp, "sent") == "silenced"
        silence = matching_silence(alert, self.silences.silences, int(time.time() * 1000))
        if silence is None:
            self._firing[fp] = "sent"
            return False
        if self._firing.get(fp) != "sent":  # a page already open must still get its resolve
            self._firing[fp] = "silenced"
        log.info("silenced", extra={"silence_id": silence.silence_id})
        return True

    async def _deliver(self, alert: dict[str, Any]) -> None:
        body = self.receiver.body(alert)
        started = time.monotonic()
        attempt = 0
        while True:
            left = started + self.config.give_up_after_s - time.monotonic()
            wait = self.breaker.permit()
            if wait > 0:  # circuit open: wait for the probe, unless the record gets too old
                if left <= 0:
                    return self._give_up(attempt, "circuit open")
                await pause(self.halt, min(wait, left))
                continue
            attempt += 1
            if attempt > 1:
                self.stats.retried += 1
            try:
                result = await post(self.session, self.receiver, body,
                                    self.config.request_timeout_s)
            except BaseException:
                self.breaker.release()
                raise
            if result.outcome is not Outcome.RETRY:  # it answered: the receiver is up
                self._breaker_changed(self.breaker.record_success)
                if result.outcome is Outcome.DELIVERED:
                    self.stats.delivered += 1
                    log.info("delivered", extra={"attempt": attempt})
                    return None
                return self._give_up(attempt, f"rejected ({result.detail})")
            self._breaker_changed(self.breaker.record_failure)
            delay = backoff_s(attempt, self.config.backoff_initial_s, self.config.backoff_max_s)
            if time.monotonic() + delay > started + self.config.give_up_after_s:
                return self._give_up(attempt, result.detail)
            log.warning("attempt failed; will retry",
                        extra={"attempt": attempt, "error": result.detail,
                               "retry_in_s": round(delay, 2)})
            await pause(self.halt, delay)

    def _give_up(self, attempts: int, why: str) -> None:
        self.stats.failed += 1
        log.error("GAVE UP delivering an alert: the receiver never got it; page by hand if it "
                  "matters", extra={"attempts": attempts, "error": why,
                                    "give_up_after_s": self.config.give_up_after_s})
        return None

    def _breaker_changed(self, update: Any) -> None:
        before = self.breaker.state
        update()
        after = self.breaker.state
        self.stats.breaker_state = after
        self.stats.breaker_opened = self.breaker.opened_count
        if after != before and after == OPEN:
            log.warning("circuit opened: receiver failing; probing again after the cool-down",
                        extra={"failures": self.breaker.consecutive_failures,
                               "cooldown_s": self.config.breaker_cooldown_s})
        elif after != before:
            log.info("circuit closed: receiver answering again")
