"""Bulk replay: recompute order state and canonical outputs from the input topics, off Faust.

Used after a rule fix (`rebuild`: empty state, from the beginning), for backfills and to catch
up a large backlog (from a time or from the committed offsets, over the current state). It
calls the same pure `tables.fulfillment` functions as the live agent, in a confluent-kafka
batch loop, then:

1. writes each touched order's final state once to the table's changelog topic (same key,
   same partition as the live agent would), tombstoning orders a rebuild no longer has;
2. flushes the canonical states it emitted to `fulfillment-states`;
3. commits the live application's consumer-group offsets at the end offsets it replayed to,
   so Faust workers recover the table from the changelog and continue live from there.

Live workers must be stopped while it runs (it refuses when the group has active members).
Replaying over existing state is safe: events are deduplicated by event_id, so an event the
state already holds changes nothing and emits nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.dlq import DeadLetterSink
from streams.schema_source import RegistrySchemaSource, SchemaSource
from streams.serde import DecodeError, WireDecoder, WireEncoder
from streams.settings import Settings
from streams.topics import ORDER_STATE_TABLE, TopicNames, changelog_topic
from tables import fulfillment

log = logging.getLogger(__name__)
BATCH = 20_000


class ReplayRefused(RuntimeError):
    """Replay would race live workers or has nothing to do; the message says what to do."""


@dataclass
class ReplayPlan:
    start: str = "committed"  # "beginning" | "committed" | epoch millis as a string
    rebuild: bool = False  # start from empty state (implies start="beginning")
    dry_run: bool = False  # compute and report, write nothing, commit nothing
    force: bool = False  # skip the live-members check (you stopped the workers yourself)


@dataclass
class ReplaySummary:
    events: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    states_emitted: int = 0
    orders_written: int = 0
    tombstones: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    committed: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def render(self) -> str:
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.by_topic.items()))
        return (f"replayed {self.events} events ({topics}) in {self.seconds:.1f}s "
                f"= {self.events_per_second:,.0f} events/s; {self.states_emitted} states "
                f"emitted, {self.orders_written} orders written to the changelog, "
                f"{self.tombstones} tombstones, {self.dead_letters} dead letters")


def _group_is_active(bootstrap: str, group: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=15)
    return bool(described.members)


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        raise ReplayRefused(f"topic {topic!r} does not exist; nothing to replay")
    return sorted(meta.partitions)


class Replayer:
    def __init__(self, settings: Settings, source: SchemaSource | None = None,
                 progress: Callable[[ReplaySummary], None] | None = None) -> None:
        self.settings = settings
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.source = source or RegistrySchemaSource.from_settings(settings)
        self.progress = progress
        self.changelog = changelog_topic(settings.app_id, ORDER_STATE_TABLE)
        self.group = settings.app_id
        bootstrap = settings.bootstrap_servers
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "enable.partition.eof": False,
            "fetch.max.bytes": 64 * 1024 * 1024, "queued.min.messages": 200_000,
        })
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 20, "batch.num.messages": 20_000, "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "partitioner": "murmur2_random",  # as every producer of the product (see producer)
        })

    # -- offsets -------------------------------------------------------------------------------
    def _ranges(self, plan: ReplayPlan) -> dict[TopicPartition, tuple[int, int]]:
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for topic in self.names.inputs:
            tps = [TopicPartition(topic, p) for p in _partitions(self.consumer, topic)]
            committed = {(tp.topic, tp.partition): tp.offset
                         for tp in self.consumer.committed(tps, timeout=15)}
            by_time: dict[tuple[str, int], int] = {}
            if plan.start not in ("beginning", "committed") and not plan.rebuild:
                stamped = [TopicPartition(topic, tp.partition, int(plan.start)) for tp in tps]
                for tp in self.consumer.offsets_for_times(stamped, timeout=15):
                    by_time[(tp.topic, tp.partition)] = tp.offset
            for tp in tps:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=15)
                if plan.rebuild or plan.start == "beginning":
                    start = low
                elif plan.start == "committed":
                    start = committed.get((topic, tp.partition), -1)
                    start = low if start < 0 else start
                else:
                    start = by_time.get((topic, tp.partition), OFFSET_END)
                    start = high if start < 0 else start
                ranges[tp] = (max(start, low), high)
        return ranges

    # -- state ---------------------------------------------------------------------------------
    def _load_changelog(self) -> tuple[dict[bytes, dict[str, Any]], dict[bytes, int]]:
        """Current table state from the changelog (last value per key wins)."""
        states: dict[bytes, dict[str, Any]] = {}
        partition_of: dict[bytes, int] = {}
        reader = Consumer({"bootstrap.servers": self.settings.bootstrap_servers,
                           "group.id": f"{self.group}-replay-reader",
                           "enable.auto.commit": False})
        try:
            meta = reader.list_topics(self.changelog, timeout=10).topics.get(self.changelog)
            if meta is None or meta.error is not None:
                return states, partition_of
            for p in meta.partitions:
                low, high = reader.get_watermark_offsets(TopicPartition(self.changelog, p), 15)
                if high <= low:
                    continue
                reader.assign([TopicPartition(self.changelog, p, low)])
                done = False
                while not done:
                    for msg in reader.consume(10_000, timeout=5):
                        if msg.error():
                            raise KafkaException(msg.error())
                        key, value = msg.key(), msg.value()
                        if value is None:
                            states.pop(key, None)
                        else:
                            states[key] = json.loads(value)
                            partition_of[key] = p
                        done = msg.offset() >= high - 1
        finally:
            reader.close()
        return states, partition_of

    # -- the loop ------------------------------------------------------------------------------
    def run(self, plan: ReplayPlan) -> ReplaySummary:
        settings, names = self.settings, self.names
        if not plan.force and _group_is_active(settings.bootstrap_servers, self.group):
            raise ReplayRefused(
                f"consumer group {self.group!r} has live members: stop the workers first "
                "(replay and live workers must not both write the table), or pass --force")
        started = time.monotonic()
        summary = ReplaySummary()
        ranges = {tp: r for tp, r in self._ranges(plan).items() if r[1] > r[0]}
        old_states, old_partitions = self._load_changelog()
        states: dict[bytes, dict[str, Any]] = {} if plan.rebuild else old_states
        touched: dict[bytes, int] = {}
        decoders = {t: WireDecoder.for_record(self.source, names.record_of(t))
                    for t in names.inputs}
        kinds = {t: names.kind_of(t) for t in names.inputs}
        states_topic = names.fulfillment_states
        encode = WireEncoder.for_topic(self.source, states_topic, "FulfillmentState").encode
        dead = DeadLetterSink(settings.bootstrap_servers, self.source, names=names,
                              worker_id=f"{settings.worker_id}-replay")
        produce = self.producer.produce
        remaining = dict(ranges)
        if remaining:
            self.consumer.assign([TopicPartition(tp.topic, tp.partition, start)
                                  for tp, (start, _) in remaining.items()])
        ends = {(tp.topic, tp.partition): end for tp, (_, end) in ranges.items()}
        by_topic = summary.by_topic
        while remaining:
            for msg in self.consumer.consume(BATCH, timeout=1.0):
                if msg.error():
                    raise KafkaException(msg.error())
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                end = ends[(topic, partition)]
                if offset >= end:
                    continue
                if offset == end - 1:
                    remaining.pop(TopicPartition(topic, partition), None)
                by_topic[topic] = by_topic.get(topic, 0) + 1
                value = msg.value()
                stage = "decode"
                try:
                    record = decoders[topic].decode(value)
                    stage = "validate"
                    reason = fulfillment.validate(kinds[topic], record)
                    if reason is not None:
                        raise ValueError(reason)
                except (DecodeError, ValueError) as exc:  # RegistryUnavailable aborts the run
                    if not plan.dry_run:
                        dead.send(topic, partition, offset, msg.key(), value,
                                  msg.headers() or [], exc, stage)
                    summary.dead_letters += 1
                    continue
                key = msg.key() or b""
                state = states.get(key)
                if state is None:
                    state = states[key] = fulfillment.new_state(key.decode())
                emitted = fulfillment.step(state, kinds[topic], record)
                touched[key] = partition
                if emitted is not None:
                    summary.states_emitted += 1
                    if not plan.dry_run:
                        while True:
                            try:
                                produce(states_topic, encode(emitted), key)
                                break
                            except BufferError:
                                self.producer.poll(0.5)
            self.producer.poll(0)
            summary.events = sum(by_topic.values())
            if self.progress is not None:
                summary.seconds = time.monotonic() - started
                self.progress(summary)
        summary.events = sum(by_topic.values())
        if not plan.dry_run:
            self._ensure_changelog()
            self._write_changelog(states, touched, summary)
            if plan.rebuild:
                for key, partition in old_partitions.items():
                    if key not in states:
                        produce(self.changelog, None, key, partition=partition)
                        summary.tombstones += 1
            if self.producer.flush(60) or dead.flush(60):
                raise RuntimeError("replay outputs were not all acknowledged; nothing committed")
            self._commit(ends)
            summary.committed = {f"{t}[{p}]": o for (t, p), o in ends.items()}
        summary.seconds = time.monotonic() - started
        return summary

    def _ensure_changelog(self) -> None:
        """Create the changelog as Faust would (compacted, co-partitioned) if it is missing."""
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers})
        if self.changelog in admin.list_topics(timeout=10).topics:
            return
        topic = NewTopic(self.changelog, num_partitions=self.settings.partitions,
                         replication_factor=self.settings.replication_factor,
                         config={"cleanup.policy": "compact"})
        try:
            admin.create_topics([topic])[self.changelog].result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise

    def _write_changelog(self, states: dict[bytes, dict[str, Any]], touched: dict[bytes, int],
                         summary: ReplaySummary) -> None:
        dumps = json.dumps
        for key, partition in touched.items():
            value = dumps(states[key], separators=(",", ":")).encode()
            while True:
                try:
                    self.producer.produce(self.changelog, value, key, partition=partition)
                    break
                except BufferError:
                    self.producer.poll(0.5)
            summary.orders_written += 1

    def _commit(self, ends: dict[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(30)
