"""Stream-time timers for Faust agents, kept in a RocksDB-backed table (changelog in Kafka).

Faust has no event-time timers, and a heap of every order's deadline does not fit in one
table value. So a timer is a key of its own, `b"<due ms, 13 digits>|<order key>"`, in a
table co-partitioned with the orders: RocksDB keeps keys sorted, so the timers due at stream
time `now` are a prefix scan of the partition's database that stops at the first later key.
Each partition's stream clock is kept under a key that sorts after every timer.

All writes happen in the context of an event of the same partition (`enter_event`), so they
land in that partition's store and changelog, like any table write.

A crash keeps a prefix of a partition's changelog writes, so an order's timer is never
deleted before its next one is written (`settle`), and the scan also reads the writer's writes
not yet acknowledged (at-least-once keeps those out of RocksDB, streams/batching.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from faust.types import EventT, TableT

from streams.batching import TableWriter, enter_event
from tables.clock import AlignedClock

CLOCK_KEY = b"\xffclock"


def timer_key(due_ms: int, key: bytes) -> bytes:
    return b"%013d|%s" % (due_ms, key)


class TimerIndex:
    def __init__(self, table: TableT, writer: TableWriter, sources: tuple[str, ...],
                 allowed_lateness_ms: int) -> None:
        self.table = table
        self.writer = writer
        self.sources = sources
        self.allowed_lateness_ms = allowed_lateness_ms
        self._clocks: dict[int, AlignedClock] = {}
        self._saved: dict[int, bytes] = {}  # last clock snapshot written per partition
        # Per partition, a key below which no timer is left (everything under it was settled
        # or moved). Settled timers are deleted, and a RocksDB iterator from the first key
        # steps over every tombstone not yet compacted away: tens of thousands after a busy
        # hour, milliseconds per scan, per partition per batch. A scan starts here instead.
        self._floor: dict[int, bytes] = {}

    def clock(self, partition: int, event: EventT) -> AlignedClock:
        clock = self._clocks.get(partition)
        if clock is None:
            enter_event(event)
            raw = self.table.get(CLOCK_KEY)
            clock = (AlignedClock.restore(self.sources, json.loads(raw)) if raw is not None
                     else AlignedClock(self.sources, self.allowed_lateness_ms))
            self._clocks[partition] = clock
        return clock

    def partitions(self) -> list[int]:
        """Partitions whose clock this worker holds (those it has consumed since assignment)."""
        return sorted(self._clocks)

    def save_clock(self, partition: int, event: EventT) -> None:
        raw = json.dumps(self._clocks[partition].snapshot()).encode()
        if self._saved.get(partition) != raw:  # ticks must not write a record every second
            self.writer.put(CLOCK_KEY, raw, event)
            self._saved[partition] = raw

    def forget_partitions(self) -> None:
        """After a rebalance the clocks of partitions we lost must be re-read when regained."""
        self._clocks.clear()
        self._saved.clear()
        self._floor.clear()

    def move(self, key: bytes, previous_due: int | None, due: int | None,
             event: EventT) -> None:
        """The order's timer moves from `previous_due` to `due` (either None: none)."""
        self.settle(key, due, [previous_due], event)

    def due(self, partition: int, now_ms: int,
            limit: int | None = None) -> list[tuple[int, bytes]]:
        """(due ms, order key) of every timer due at `now_ms` in `partition`, earliest first;
        at most `limit` (the rest are found by the next call).

        Nothing is removed here: the caller settles each timer after acting on it (`settle`,
        `keep`). Deleting first would let a crash keep the deletion and lose what the action
        wrote next (the writes of a batch reach the changelog as a prefix): an order left with
        no timer at all, a metric window never emitted.
        """
        found = []
        for raw in self._scan(partition, now_ms, limit):
            due_ms, _, key = raw.partition(b"|")
            found.append((int(due_ms), key))
        return found

    def settle(self, key: bytes, due: int | None, stale: Iterable[int | None],
               event: EventT, *, reassert: bool = False) -> None:
        """The order's timer is now `due` (None: none): its entry is written first, then
        the `stale` entries that differ are deleted. Whatever prefix of these writes a crash
        keeps, the order has the entry of its old or of its new due (at worst both: one
        extra evaluation). `reassert` writes the entry even if `due` is among `stale`: a
        crash may have lost it while keeping the stale one that brought the order here."""
        stale_set = {old for old in stale if old is not None}
        if due is not None and (reassert or due not in stale_set):
            timer = timer_key(due, key)
            self.writer.put(timer, b"", event)
            self._lower_floor(event.message.partition, timer)
        for old in sorted(stale_set - {due}):
            self.writer.put(timer_key(old, key), None, event)

    def keep(self, key: bytes, due: int, partition: int) -> None:
        """Leave a found entry in place, to be found again by the next scan."""
        self._lower_floor(partition, timer_key(due, key))

    def _lower_floor(self, partition: int, timer: bytes) -> None:
        floor = self._floor.get(partition)
        if floor is not None and timer < floor:  # e.g. due 0: "evaluate when time moves"
            self._floor[partition] = timer

    def _scan(self, partition: int, now_ms: int, limit: int | None = None) -> list[bytes]:
        """Timer keys due at `now_ms`, sorted, at most `limit`; every timer below the new
        floor is the caller's to remove, move past now or keep (which lowers it again)."""
        db = self.table.data._db_for_partition(partition)  # the partition's RocksDB, sorted
        bound = b"%013d}" % now_ms  # '}' sorts after '|': every timer due at or before now
        due: list[bytes] = []
        # Writes not acknowledged yet are not in RocksDB (streams/batching.py): they decide.
        unacked = self.writer.unacked.get(partition) or {}
        start = self._floor.get(partition) or b""
        # Streams keys from RocksDB in sorted order, from the floor (see __init__) if known.
        for raw in db.keys(from_key=start or None):
            if raw >= bound or len(due) == limit:
                break
            if raw[:1].isdigit() and raw not in unacked:
                due.append(raw)
        if unacked:
            due.extend(raw for raw, (_, value) in unacked.items()
                       if value is not None and start <= raw < bound and raw[:1].isdigit())
            due.sort()
        if limit is not None and len(due) >= limit:
            del due[limit:]
            below = due[-1] + b"\x00"  # the first `limit` of the union of both are these
        else:
            below = bound
        floor = self._floor.get(partition)
        if floor is None or floor < below:
            self._floor[partition] = below
        return due
