"""The bulk replay of a set of partitions, in one process: read, fold, emit, hand over.

`streams.replay` runs one of these over every partition, or one per job process over a share
of them (`streams.replay_jobs`): the domain is per partition (co-partitioned inputs, one
`OrderRunner` each), so shares need nothing from each other. Committing the live group's
offsets is left to the caller, once every share has handed over.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.census_store import CENSUS_KEY
from streams.census_store import dumps as census_dumps
from streams.delivery_reports import failure
from streams.dlq import DeadLetterSink
from streams.ingest import RejectedInput, read_input
from streams.observations import PARTITION as OBSERVATIONS_PARTITION
from streams.observations import encode_observations, observations_topic
from streams.schema_source import SchemaSource
from streams.serde import WireDecoder, WireEncoder
from streams.settings import Settings
from streams.state_json import json_dumps, json_loads
from streams.timers import CLOCK_KEY, timer_key
from streams.topic_reader import read_to_end
from streams.topics import ORDER_STATE_TABLE, ORDER_TIMERS_TABLE, TopicNames, changelog_topic
from tables.clock import AlignedClock
from tables.order_pipeline import PipelineConfig
from tables.order_runner import ALL_IDLE, KINDS, OrderRunner

# Events per partition of the share in a batch (a batch takes records as fetched, so about
# this many from each). Each batch ends with stream time advancing (due timers fire) and every
# order it changed settled and evaluated once, so larger batches evaluate less (an order
# changed in three batches is evaluated three times: 20,000 orders replayed in batches of
# 10,000 per partition cost ~115 us/event in the domain, 25,000 ~75) while stream time still
# moves every BATCH_PER_PARTITION events or so of each partition.
BATCH_PER_PARTITION = 10_000
# A consume() call returns at most this many records, whatever the share of partitions.
MAX_BATCH = 100_000

Ranges = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> [start, end) offsets


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
    jobs: int = 1  # processes the partitions were replayed in

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @classmethod
    def merged(cls, parts: Collection[ReplaySummary]) -> ReplaySummary:
        """The counts of several shares added up (seconds and jobs are the caller's)."""
        total = cls()
        for part in parts:
            for f in fields(cls):
                value = getattr(part, f.name)
                if f.name in ("seconds", "jobs"):
                    continue
                if isinstance(value, dict):
                    mine = getattr(total, f.name)
                    for k, v in value.items():
                        mine[k] = mine.get(k, 0) + v
                else:
                    setattr(total, f.name, getattr(total, f.name) + value)
        return total

    def render(self) -> str:
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.by_topic.items()))
        jobs = f" by {self.jobs} processes" if self.jobs > 1 else ""
        return (f"replayed {self.events} events ({topics}) in {self.seconds:.1f}s "
                f"= {self.events_per_second:,.0f} events/s{jobs}; {self.states_emitted} states, "
                f"{self.mismatches_emitted} mismatch and {self.alerts_emitted} alert records "
                f"and {self.observations_emitted} metric observations "
                f"emitted, {self.orders_written} orders written to the changelog, "
                f"{self.tombstones} tombstones, {self.dead_letters} dead letters")


@contextlib.contextmanager
def bulk_gc() -> Iterator[None]:
    """No cyclic garbage collection while the replay folds.

    The loop allocates a few containers per event and keeps most of them to the end (every
    order's record): the collector would scan each of them again as it ages through the
    generations, for nothing, since what the loop drops is acyclic and freed at once by
    reference counting (with automatic collection on, a third of the replay's CPU at the
    default thresholds and ~12% at rare ones; with it off, a collection after 20,000 orders
    found no cyclic garbage at all). What is alive at the start is frozen out of the
    collections that follow, and the collector is left as it was found."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _count(summary: ReplaySummary, output: str) -> None:
    if output == "state":
        summary.states_emitted += 1
    elif output == "mismatch":
        summary.mismatches_emitted += 1
    else:
        summary.alerts_emitted += 1


class PartitionReplay:
    """Replays `partitions` over `ranges` (only theirs are read), then hands them over."""

    def __init__(self, settings: Settings, source: SchemaSource, plan: ReplayPlan,
                 ranges: Ranges, partitions: Collection[int]) -> None:
        self.settings = settings
        self.source = source
        self.plan = plan
        self.partitions = sorted(partitions)
        self.ranges = {tp: r for tp, r in ranges.items()
                       if tp[1] in self.partitions and r[1] > r[0]}
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.changelog = changelog_topic(settings.app_id, ORDER_STATE_TABLE)
        self.timers_changelog = changelog_topic(settings.app_id, ORDER_TIMERS_TABLE)
        self.config = PipelineConfig(
            closed_order_retention_ms=settings.closed_order_retention_ms)
        self.summary = ReplaySummary()
        self.runners: dict[int, OrderRunner] = {}
        self.existing: dict[int, set[bytes]] = {}
        self.due_before: dict[tuple[int, str], int | None] = {}
        bootstrap = settings.bootstrap_servers
        # Reads by assignment under a group of its own that nothing ever commits: the live
        # group's offsets are committed by the caller, once, for every share.
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"fstreams-replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "enable.partition.eof": False,
            "fetch.max.bytes": 64 * 1024 * 1024, "queued.min.messages": 200_000,
        })
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 20, "batch.num.messages": 20_000, "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "partitioner": "murmur2_random",  # as every producer of the product (see producer)
            "on_delivery": self._delivered,
        })
        # Reports that do not prove their record written (errors, no offset): how many, and
        # the first reason. Any of them and the hand-over raises: nothing is committed.
        self.undelivered = 0
        self.first_undelivered: str | None = None
        self.dead: DeadLetterSink | None = None

    # -- state ---------------------------------------------------------------------------------
    def _read_changelog(self, topic: str) -> dict[int, dict[bytes, bytes]]:
        """A table as its changelog holds it, for this share: partition -> key -> value."""
        tables: dict[int, dict[bytes, bytes]] = {p: {} for p in self.partitions}
        every = len(self.partitions) == self.settings.partitions
        bootstrap = self.settings.bootstrap_servers
        reads = ([read_to_end(bootstrap, topic, timeout_s=30.0)] if every else
                 [read_to_end(bootstrap, topic, timeout_s=30.0, partition=p)
                  for p in self.partitions])
        for messages in reads:
            for msg in messages:
                table = tables.setdefault(msg.partition() or 0, {})
                key, value = msg.key() or b"", msg.value()
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        return tables

    def load(self) -> None:
        """One in-memory runner per partition, loaded from the tables' changelogs (unless
        rebuilding); plus the keys each partition's changelogs hold now (for tombstones)."""
        rebuild = self.plan.rebuild
        records = self._read_changelog(self.changelog)
        timers = self._read_changelog(self.timers_changelog)
        for p in self.partitions:
            self.existing[p] = set(records[p]) | {
                t for t in timers[p] if t not in (CLOCK_KEY, CENSUS_KEY)}
            loaded = {} if rebuild else {k.decode(): json_loads(v)
                                          for k, v in records[p].items()}
            runner = OrderRunner(self.config, self.settings.allowed_lateness_ms, loaded,
                                 coalesce=True)
            clock = timers[p].get(CLOCK_KEY)
            if clock is not None and not rebuild:
                runner.clock = AlignedClock.restore(KINDS, json.loads(clock))
            self.runners[p] = runner
            self.due_before.update(((p, key), rec["due"]) for key, rec in loaded.items())

    # -- the loop ------------------------------------------------------------------------------
    def compute(self, progress: Callable[[ReplaySummary], None] | None = None) -> ReplaySummary:
        """Fold every event of the share's ranges; outputs are produced as they come."""
        with bulk_gc():
            self.load()
            self._loop(progress)
        return self.summary

    def _loop(self, progress: Callable[[ReplaySummary], None] | None) -> None:
        settings, names, plan, summary = self.settings, self.names, self.plan, self.summary
        runners, produce = self.runners, self._produce
        dry_run = plan.dry_run
        decoders = {t: WireDecoder.for_record(self.source, names.record_of(t))
                    for t in names.inputs}
        kinds = {t: names.kind_of(t) for t in names.inputs}
        observations = observations_topic(settings.app_id)
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
        dead = self.dead = DeadLetterSink(settings.bootstrap_servers, self.source, names=names,
                                          worker_id=f"{settings.worker_id}-replay")

        def emit(items: list[tuple[str, str, Any]]) -> None:
            taken: list[Any] = []  # for the windowed metrics, in records of many as the live fold
            for output, key, derived in items:
                if output == "expired":  # dropped from the runner: tombstoned at hand-over
                    continue
                if output == "observation":
                    taken.append(derived)
                    continue
                _count(summary, output)
                if not dry_run:
                    produce(outputs[output], key.encode(), encoders[output].encode(derived))
            summary.observations_emitted += len(taken)
            if taken and not dry_run:
                for value in encode_observations(taken):
                    produce(observations, None, value, OBSERVATIONS_PARTITION)

        remaining = set(self.ranges)
        if remaining:
            self.consumer.assign([TopicPartition(t, p, start)
                                  for (t, p), (start, _) in self.ranges.items()])
        ends = {tp: end for tp, (_, end) in self.ranges.items()}
        batch = min(MAX_BATCH, BATCH_PER_PARTITION * max(1, len(self.partitions)))
        by_topic = summary.by_topic
        started = time.monotonic()
        while remaining:
            chunks: dict[int, list[tuple[str, str, dict[str, Any]]]] = {}
            for msg in self._fill(batch, remaining, ends):
                if msg.error():
                    raise KafkaException(msg.error())
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                end = ends[(topic, partition)]
                if offset >= end:
                    continue
                if offset == end - 1:
                    remaining.discard((topic, partition))
                by_topic[topic] = by_topic.get(topic, 0) + 1
                value = msg.value()
                try:
                    record = read_input(decoders[topic], kinds[topic], value)
                except RejectedInput as rejected:  # RegistryUnavailable aborts the run
                    if not dry_run:
                        dead.send(topic, partition, offset, msg.key(), value,
                                  msg.headers() or [], rejected.cause, rejected.stage,
                                  correlation_id=rejected.correlation_id)
                    summary.dead_letters += 1
                    continue
                key = (msg.key() or b"").decode()
                chunks.setdefault(partition, []).append((key, kinds[topic], record))
            for partition, chunk in chunks.items():
                # Inputs of this partition read to their end no longer hold stream time back.
                busy = {kinds[t] for t, p in remaining if p == partition}
                idle = frozenset(k for k in kinds.values() if k not in busy)
                emit(runners[partition].process_batch(chunk, idle))
            self.producer.poll(0)
            summary.events = sum(by_topic.values())
            if not remaining:  # everything read: time is the newest event of each partition
                for runner in runners.values():
                    now = runner.clock.now(ALL_IDLE)
                    if now is not None:
                        emit(runner.advance(now))
            if progress is not None:
                summary.seconds = time.monotonic() - started
                progress(summary)
        summary.events = sum(by_topic.values())

    def _fill(self, batch: int, remaining: set[tuple[str, int]],
              ends: dict[tuple[str, int], int]) -> Iterator[Any]:
        """Up to `batch` records, taken as they arrive; a batch ends early only when every
        range is read (`remaining` shrinks as the caller meets each range's last offset),
        instead of waiting out a timeout for records that will never come."""
        taken = 0
        while remaining and taken < batch:
            messages = self.consumer.consume(min(batch - taken, 10_000), timeout=0.1)
            if not messages:  # a range may end in a transaction marker, never delivered
                for tp in self.consumer.position([TopicPartition(t, p) for t, p in remaining]):
                    if tp.offset >= ends[(tp.topic, tp.partition)]:
                        remaining.discard((tp.topic, tp.partition))
            taken += len(messages)
            yield from messages

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        reason = failure(err, msg)
        if reason is not None:
            self.undelivered += 1
            self.first_undelivered = self.first_undelivered or reason

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 partition: int = -1) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, partition)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self.producer.poll(0.5)

    # -- hand-over -----------------------------------------------------------------------------
    def hand_over(self) -> ReplaySummary:
        """Write the share's tables to their changelogs and wait until every output and
        record is acknowledged. Raises when some were not: then nothing may be committed."""
        if self.plan.dry_run:
            return self.summary
        self._write_tables()
        dead_unsent = self.dead.flush(60) if self.dead is not None else 0
        unsent = self.producer.flush(60)
        dead_failed = self.dead.errors if self.dead is not None else []
        if unsent or dead_unsent or self.undelivered or dead_failed:
            first = self.first_undelivered or (dead_failed[0] if dead_failed else "timed out")
            raise RuntimeError(
                f"replay outputs were not all acknowledged ({unsent + dead_unsent} unsent, "
                f"{self.undelivered + len(dead_failed)} failed, first: {first}); nothing "
                "committed: run the replay again")
        return self.summary

    def _write_tables(self) -> None:
        """Hand over to the live agent: every record, its timer and each partition's clock,
        written to the changelogs exactly as the agent would have; stale keys tombstoned."""
        rebuild, summary, produce = self.plan.rebuild, self.summary, self._produce
        for p, runner in self.runners.items():
            kept: set[bytes] = set()
            touched = runner.touched
            for key, record in runner.records.items():
                raw_key = key.encode()
                kept.add(raw_key)
                if rebuild or key in touched:  # unchanged records are there already
                    produce(self.changelog, raw_key, json_dumps(record), p)
                    summary.orders_written += 1
                due = record["due"]
                if due is not None:
                    timer = timer_key(due, raw_key)
                    kept.add(timer)
                    if self.due_before.get((p, key)) != due:
                        produce(self.timers_changelog, timer, b"", p)
            if runner.clock.max_event_ms is not None:
                produce(self.timers_changelog, CLOCK_KEY,
                        json.dumps(runner.clock.snapshot()).encode(), p)
            # The partition's census, as counted over the records written above.
            produce(self.timers_changelog, CENSUS_KEY, census_dumps(runner.census), p)
            for stale in self.existing[p] - kept:
                topic = self.changelog if not stale[:1].isdigit() else self.timers_changelog
                produce(topic, stale, None, p)
                summary.tombstones += 1
            self.producer.poll(0)

    def close(self, flush: bool = True) -> None:
        """`flush=False` after a failure: what is still queued is dropped, not waited for."""
        self.consumer.close()
        if flush:
            self.producer.flush(30)
