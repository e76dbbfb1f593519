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

from streams.batching import json_dumps, json_loads
from streams.census_store import CENSUS_KEY
from streams.census_store import dumps as census_dumps
from streams.dlq import DeadLetterSink
from streams.ingest import RejectedInput, read_input
from streams.observations import PARTITION as OBSERVATIONS_PARTITION
from streams.observations import encode_observation, observations_topic
from streams.schema_source import RegistrySchemaSource, SchemaSource
from streams.serde import WireDecoder, WireEncoder
from streams.settings import Settings
from streams.timers import CLOCK_KEY, timer_key
from streams.topic_reader import read_to_end
from streams.topics import ORDER_STATE_TABLE, ORDER_TIMERS_TABLE, TopicNames, changelog_topic
from tables.clock import AlignedClock
from tables.order_pipeline import PipelineConfig
from tables.order_runner import ALL_IDLE, KINDS, OrderRunner

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
    mismatches_emitted: int = 0
    alerts_emitted: int = 0
    observations_emitted: int = 0  # metric observations, for the windows agent
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
                f"= {self.events_per_second:,.0f} events/s; {self.states_emitted} states, "
                f"{self.mismatches_emitted} mismatch and {self.alerts_emitted} alert records "
                f"and {self.observations_emitted} metric observations "
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
        self.timers_changelog = changelog_topic(settings.app_id, ORDER_TIMERS_TABLE)
        self.config = PipelineConfig(
            closed_order_retention_ms=settings.closed_order_retention_ms)
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
    def _read_changelog(self, topic: str) -> dict[int, dict[bytes, bytes]]:
        """A table as its changelog holds it: partition -> key -> latest value."""
        tables: dict[int, dict[bytes, bytes]] = {}
        for msg in read_to_end(self.settings.bootstrap_servers, topic, timeout_s=30.0):
            table = tables.setdefault(msg.partition() or 0, {})
            key, value = msg.key() or b"", msg.value()
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        return tables

    def _runners(self, rebuild: bool) -> tuple[dict[int, OrderRunner], dict[int, set[bytes]]]:
        """One in-memory runner per partition, loaded from the tables' changelogs (unless
        rebuilding); plus the keys each partition's changelogs hold now (for tombstones)."""
        records = self._read_changelog(self.changelog)
        timers = self._read_changelog(self.timers_changelog)
        runners: dict[int, OrderRunner] = {}
        existing: dict[int, set[bytes]] = {}
        for p in range(self.settings.partitions):
            existing[p] = set(records.get(p, {})) | {
                t for t in timers.get(p, {}) if t not in (CLOCK_KEY, CENSUS_KEY)}
            loaded = {} if rebuild else {k.decode(): json_loads(v)
                                          for k, v in records.get(p, {}).items()}
            runner = OrderRunner(self.config, self.settings.allowed_lateness_ms, loaded,
                                 coalesce=True)
            clock = timers.get(p, {}).get(CLOCK_KEY)
            if clock is not None and not rebuild:
                runner.clock = AlignedClock.restore(KINDS, json.loads(clock))
            runners[p] = runner
        return runners, existing

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
        runners, existing = self._runners(plan.rebuild)
        due_before = {(p, key): rec["due"] for p, r in runners.items()
                      for key, rec in r.records.items()}
        decoders = {t: WireDecoder.for_record(self.source, names.record_of(t))
                    for t in names.inputs}
        kinds = {t: names.kind_of(t) for t in names.inputs}
        observations = observations_topic(settings.app_id)
        if not plan.dry_run:  # as the windows agent declares it: one partition
            self._ensure_topic(observations, 1, {})
        outputs = {
            "state": names.fulfillment_states,
            "mismatch": names.reconciliation_mismatches,
            "alert": names.sla_alerts,
        }
        encoders = {
            "state": WireEncoder.for_topic(self.source, outputs["state"], "FulfillmentState"),
            "mismatch": WireEncoder.for_topic(self.source, outputs["mismatch"],
                                              "ReconciliationMismatch"),
            "alert": WireEncoder.for_topic(self.source, outputs["alert"], "SlaAlert"),
        }
        dead = DeadLetterSink(settings.bootstrap_servers, self.source, names=names,
                              worker_id=f"{settings.worker_id}-replay")
        def emit(items: list[tuple[str, str, Any]]) -> None:
            for output, key, derived in items:
                if output == "expired":  # dropped from the runner: tombstoned below
                    continue
                if output == "observation":  # for the windowed metrics, as the live fold
                    summary.observations_emitted += 1
                    if not plan.dry_run:
                        self._produce(observations, None, encode_observation(derived),
                                      OBSERVATIONS_PARTITION)
                    continue
                self._count(summary, output)
                if not plan.dry_run:
                    self._produce(outputs[output], key.encode(), encoders[output].encode(derived))

        remaining = dict(ranges)
        if remaining:
            self.consumer.assign([TopicPartition(tp.topic, tp.partition, start)
                                  for tp, (start, _) in remaining.items()])
        ends = {(tp.topic, tp.partition): end for tp, (_, end) in ranges.items()}
        by_topic = summary.by_topic
        while remaining:
            chunks: dict[int, list[tuple[str, str, dict[str, Any]]]] = {}
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
                try:
                    record = read_input(decoders[topic], kinds[topic], value)
                except RejectedInput as rejected:  # RegistryUnavailable aborts the run
                    if not plan.dry_run:
                        dead.send(topic, partition, offset, msg.key(), value,
                                  msg.headers() or [], rejected.cause, rejected.stage,
                                  correlation_id=rejected.correlation_id)
                    summary.dead_letters += 1
                    continue
                key = (msg.key() or b"").decode()
                chunks.setdefault(partition, []).append((key, kinds[topic], record))
            for partition, chunk in chunks.items():
                # Inputs of this partition read to their end no longer hold stream time back.
                busy = {kinds[tp.topic] for tp in remaining if tp.partition == partition}
                idle = frozenset(k for k in kinds.values() if k not in busy)
                emit(runners[partition].process_batch(chunk, idle))
            self.producer.poll(0)
            summary.events = sum(by_topic.values())
            if not remaining:  # everything read: time is the newest event of each partition
                for runner in runners.values():
                    now = runner.clock.now(ALL_IDLE)
                    if now is not None:
                        emit(runner.advance(now))
            if self.progress is not None:
                summary.seconds = time.monotonic() - started
                self.progress(summary)
        summary.events = sum(by_topic.values())
        if not plan.dry_run:
            self._ensure_changelog(self.changelog)
            self._ensure_changelog(self.timers_changelog)
            self._write_tables(runners, due_before, existing, plan.rebuild, summary)
            if self.producer.flush(60) or dead.flush(60):
                raise RuntimeError("replay outputs were not all acknowledged; nothing committed")
            self._commit(ends)
            summary.committed = {f"{t}[{p}]": o for (t, p), o in ends.items()}
        summary.seconds = time.monotonic() - started
        return summary

    @staticmethod
    def _count(summary: ReplaySummary, output: str) -> None:
        if output == "state":
            summary.states_emitted += 1
        elif output == "mismatch":
            summary.mismatches_emitted += 1
        else:
            summary.alerts_emitted += 1

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value, key)
                else:
                    self.producer.produce(topic, value, key, partition=partition)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self.producer.poll(0.5)

    def _write_tables(self, runners: dict[int, OrderRunner],
                      due_before: dict[tuple[int, str], int | None],
                      existing: dict[int, set[bytes]], rebuild: bool,
                      summary: ReplaySummary) -> None:
        """Hand over to the live agent: every record, its timer and each partition's clock,
        written to the changelogs exactly as the agent would have; stale keys tombstoned."""
        for p, runner in runners.items():
            kept: set[bytes] = set()
            for key, record in runner.records.items():
                raw_key = key.encode()
                kept.add(raw_key)
                if key in runner.touched or rebuild:  # unchanged records are there already
                    self._produce(self.changelog, raw_key,
                                  json_dumps(record), p)
                    summary.orders_written += 1
                if record["due"] is not None:
                    timer = timer_key(record["due"], raw_key)
                    kept.add(timer)
                    if due_before.get((p, key)) != record["due"]:
                        self._produce(self.timers_changelog, timer, b"", p)
            if runner.clock.max_event_ms is not None:
                self._produce(self.timers_changelog, CLOCK_KEY,
                              json.dumps(runner.clock.snapshot()).encode(), p)
            # The partition's census, as counted over the records written above.
            self._produce(self.timers_changelog, CENSUS_KEY, census_dumps(runner.census), p)
            for stale in existing[p] - kept:
                topic = self.changelog if not stale[:1].isdigit() else self.timers_changelog
                self._produce(topic, stale, None, p)
                summary.tombstones += 1

    def _ensure_changelog(self, name: str) -> None:
        """Create a changelog as Faust would (compacted, co-partitioned) if it is missing."""
        self._ensure_topic(name, self.settings.partitions, {"cleanup.policy": "compact"})

    def _ensure_topic(self, name: str, partitions: int, config: dict[str, str]) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers})
        if name in admin.list_topics(timeout=10).topics:
            return
        topic = NewTopic(name, num_partitions=partitions,
                         replication_factor=self.settings.replication_factor, config=config)
        try:
            admin.create_topics([topic])[name].result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise

    def _commit(self, ends: dict[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(30)
