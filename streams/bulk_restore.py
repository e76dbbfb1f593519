"""Table recovery in bulk: a changelog partition far behind is read in large batches and written
to its RocksDB database with one WriteBatch per batch, before Faust's recovery takes over.

Faust restores a changelog record by record through its consumer, conductor and recovery loop
(a task and a wait per record), about 2,500 records/s on two cores whatever the fetch sizes
and buffers: 500,000 orders (~1,000,000 records) would take minutes. Here, once Faust knows
which partitions are active and where their changelogs end (`_build_highwaters`), every
active partition further behind than `min_records` is read by a plain librdkafka consumer (no
group, read_committed: records of aborted transactions are never restored) and applied to the
partition's database as Faust would apply it (raw key and value, a delete for a tombstone),
with Faust's offset key in the same WriteBatch. Faust then reads that offset as the partition's
persisted offset and only fetches what came after it: the same code path as a restart on a
kept data dir.

The restore stops at the highwater Faust measured, never beyond (Faust's consistency check
refuses a persisted offset past it), and within a time budget well inside Faust's request
timeout (the call runs under it): a bigger backlog is finished by Faust's own recovery.
Writes skip RocksDB's write-ahead log and each database is flushed before Faust writes to it
again: a kill mid-restore leaves each database a consistent prefix of its changelog, the
offset key included, never live writes on top of lost restored ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import rocksdict
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.stores import rocksdb
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP, AppT

from streams import malloc_arenas
from streams.rocks_options import no_wal

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BATCH_RECORDS = 5_000  # records per consume() call and per WriteBatch round
POLL_S = 0.5


@dataclass(frozen=True)
class RestoreConfig:
    bootstrap: str
    min_records: int = 1_000  # 0: bulk restore off, Faust restores everything
    budget_s: float = 45.0  # at most this long per recovery; Faust finishes the rest
    # The restore consumer's name at the broker (its metrics, logs and quotas).
    client_id: str = "fstreams-restore"


@dataclass(frozen=True)
class Span:
    """Changelog offsets [start, end) of one partition to restore."""

    start: int
    end: int

    @property
    def records(self) -> int:
        return self.end - self.start


def plan(highwaters: Mapping[TP, int | None], persisted: Mapping[TP, int | None],
         earliest: Mapping[TP, int | None], min_records: int) -> dict[TP, Span]:
    """Partitions worth a bulk restore and the offsets to read.

    Offsets are Faust's: `highwaters[tp]` is the last offset of the changelog (its end - 1;
    -1 or None when empty), `persisted[tp]` the last offset already in the local store (None
    when it has none) and `earliest[tp]` the first offset still in the changelog."""
    spans: dict[TP, Span] = {}
    if min_records <= 0:
        return spans
    for tp, last in highwaters.items():
        if last is None or last < 0:
            continue
        done = persisted.get(tp)
        start = max(done + 1 if done is not None and done >= 0 else 0, earliest.get(tp) or 0)
        span = Span(start, last + 1)
        if span.records >= min_records:
            spans[tp] = span
    return spans


@dataclass
class Target:
    """One partition being restored: where to read, where to write, and how far it got."""

    span: Span
    db: Any  # the partition's rocksdict.Rdict
    offset_key: bytes
    applied: int = 0  # records applied
    persisted: int | None = None  # last offset applied (in the batch being built)
    written: int | None = None  # last offset recorded in the store (batch written)
    done: bool = False

    def advance(self, offset: int) -> None:
        """Everything up to `offset` is applied (never moves back before the span)."""
        floor = self.span.start - 1 if self.persisted is None else self.persisted
        self.persisted = max(floor, offset)


@dataclass
class Outcome:
    targets: dict[TP, Target] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(t.applied for t in self.targets.values())


def restore(bootstrap: str, targets: dict[TP, Target], stop: threading.Event,
            deadline: float, client_id: str = "fstreams-restore") -> None:
    """Read every target's span and apply it to its database (blocking: run it in a thread).
    Each target's `written` is the offset recorded with its last write."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": f"fstreams-restore-{uuid.uuid4().hex[:8]}",  # assigned, never committed
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        # A prefetch queue keeps the broker sending while this thread writes. It is counted in
        # compressed bytes, the memory it takes is decompressed records: on the 2-core box a
        # 1,000,000-record restore (lz4 changelogs) peaked at ~420 MB RSS with 16 MiB of queue
        # (~67k records/s), ~670 MB with 64 MiB (~100k/s), ~790 MB with 128 MiB (~120k/s).
        "fetch.wait.max.ms": 10,
        "max.partition.fetch.bytes": 4 * MIB,
        "fetch.max.bytes": 32 * MIB,
        "queued.max.messages.kbytes": 32 * 1024,
        "queued.min.messages": 50_000,
    })
    without_log = no_wal()
    try:
        pending = {tp for tp, t in targets.items() if t.span.records > 0}
        for tp in set(targets) - pending:
            targets[tp].done = True
        consumer.assign([TopicPartition(tp.topic, tp.partition, targets[tp].span.start)
                         for tp in pending])
        while pending and not stop.is_set() and time.monotonic() < deadline:
            batches: dict[tuple[str, int], Any] = {}
            finished: list[tuple[str, int]] = []
            for msg in consumer.consume(BATCH_RECORDS, POLL_S):
                tp = (msg.topic(), msg.partition())  # a TP's equal (it is a named tuple)
                target = targets.get(tp)  # type: ignore[call-overload]
                if target is None or target.done:
                    continue
                offset, end = msg.offset(), target.span.end
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(err)
                    # All that is readable now is applied (markers and compacted gaps
                    # included). Short of the span's end only behind an open transaction
                    # of another producer: Faust's recovery waits that out, not this one.
                    target.advance(min(offset, end) - 1)
                    target.done = True
                elif offset >= end:  # written after Faust measured the highwater: Faust's
                    target.advance(end - 1)
                    target.done = True
                elif (key := msg.key()) is not None:  # Faust cannot store a keyless one
                    batch = batches.get(tp)
                    if batch is None:
                        batch = batches[tp] = rocksdict.WriteBatch(raw_mode=True)
                    value = msg.value()
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                    target.applied += 1
                    target.persisted = offset
                    target.done = offset == end - 1
                if target.done:
                    finished.append(tp)
                    batches.setdefault(tp, rocksdict.WriteBatch(raw_mode=True))
            for tp, batch in batches.items():
                target = targets[tp]  # type: ignore[index]
                if target.persisted is not None:
                    batch.put(target.offset_key, str(target.persisted).encode())
                    target.db.write(batch, without_log)
                    target.written = target.persisted
            if finished:
                consumer.pause([TopicPartition(topic, partition)
                                for topic, partition in finished])
                pending.difference_update(finished)
    finally:
        consumer.close()
        for target in targets.values():
            target.db.flush(True)  # the WAL-less writes are durable before Faust writes


def _run_in_thread(func: Any, *args: Any) -> asyncio.Future[None]:
    """`func(*args)` in a daemon thread (an executor's threads would hold up interpreter exit
    until a long restore ended), as a future of the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)

    def run() -> None:
        outcome: BaseException | None = None
        try:
            func(*args)
        except BaseException as exc:  # handed to the awaiting task
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name="bulk-restore", daemon=True).start()
    return future


_configs: weakref.WeakKeyDictionary[AppT, RestoreConfig] = weakref.WeakKeyDictionary()


def attach(app: AppT, config: RestoreConfig) -> None:
    """Configure `app`'s bulk restore (its TableManager must be `BulkTableManager`)."""
    _configs[app] = config


class BulkRecovery(Recovery):
    """Faust's recovery with a bulk restore of far-behind active partitions first."""

    config: RestoreConfig | None = None  # set by BulkTableManager
    _bulk: asyncio.Future[None] | None = None
    _bulk_stop: threading.Event | None = None

    async def on_stop(self) -> None:
        if self._bulk_stop is not None:
            self._bulk_stop.set()
        await super().on_stop()

    async def _build_offsets(self, consumer: Any, tps: set[TP], destination: Any,
                             title: str) -> None:
        if title == "active" and tps:
            await self._bulk_restore(consumer, tps, destination)
        await super()._build_offsets(consumer, tps, destination, title)

    async def _bulk_restore(self, consumer: Any, tps: set[TP], destination: Any) -> None:
        config = self.config
        if config is None or config.min_records <= 0:
            return
        if self._bulk is not None:  # the previous recovery's restore, told to stop
            await asyncio.wait([self._bulk])
        try:
            targets = await self._targets(consumer, tps, config.min_records)
        except Exception:  # e.g. a database still locked: Faust's recovery copes with that
            log.warning("no bulk restore: Faust's recovery restores everything", exc_info=True)
            return
        if not targets:
            return
        budget = min(config.budget_s, 0.5 * float(self.app.conf.broker_request_timeout))
        stop = self._bulk_stop = threading.Event()
        started = time.monotonic()
        log.info("bulk restore of %d changelog records in %d partitions",
                 sum(t.span.records for t in targets.values()), len(targets))
        self._bulk = _run_in_thread(restore, config.bootstrap, targets, stop, started + budget,
                                    config.client_id)
        try:
            await asyncio.shield(self._bulk)
        except asyncio.CancelledError:  # another rebalance (or stop): end the thread soon
            stop.set()
            log.info("bulk restore interrupted (rebalance or stop); what it wrote is kept")
            raise
        except Exception:  # what was written is consistent; Faust restores the rest
            log.warning("bulk restore failed; Faust's recovery continues from where it got",
                        exc_info=True)
        outcome = Outcome(targets, time.monotonic() - started)
        malloc_arenas.trim()  # the fetched records' memory is free now: hand it back
        for tp, target in targets.items():
            if target.written is not None:
                destination[tp] = target.written
        rate = outcome.records / outcome.seconds if outcome.seconds else 0.0
        log.info("bulk restore: %d records in %.1fs (%.0f records/s); %d of %d partitions "
                 "complete", outcome.records, outcome.seconds, rate,
                 sum(t.done for t in targets.values()), len(targets))

    async def _targets(self, consumer: Any, tps: set[TP],
                       min_records: int) -> dict[TP, Target]:
        """The active partitions of RocksDB tables worth a bulk restore, with their databases."""
        stores: dict[TP, rocksdb.Store] = {}
        persisted: dict[TP, int | None] = {}
        for tp in tps:
            table = self.tp_to_table.get(tp)
            store = table.data if table is not None else None
            if isinstance(store, rocksdb.Store):
                stores[tp] = store
                # Re-read: an interrupted restore may have got further than Faust noted.
                persisted[tp] = store.persisted_offset(tp)
        if not stores:
            return {}
        earliest = await consumer.earliest_offsets(*stores)
        spans = plan({tp: self.active_highwaters.get(tp) for tp in stores}, persisted,
                     earliest, min_records)
        return {tp: Target(span, stores[tp]._db_for_partition(tp.partition),
                           stores[tp].offset_key) for tp, span in spans.items()}


class BulkTableManager(TableManager):
    """Faust's table manager, recovering with `BulkRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
            # Read here: exactly-once later wraps `recovery.app` in a view of the app.
            recovery.config = _configs.get(self.app)
            self._recovery = recovery
        return self._recovery
