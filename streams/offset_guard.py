"""Faust's consumer must never commit an input offset past a record nobody processed.

What went wrong (seen in the rebalance test, with per-partition offset logs): Faust often
takes records out of aiokafka and drops them unprocessed — a fetch that returns while the
partition is paused for table recovery or flow is stopped, queues cleared at revocation, a
batch held because it was read before the rebalance. It counts on the seek to the committed
offsets after the rebalance (`perform_seek`) to read them again. But aiokafka's
`seek_to_committed` leaves a partition without a committed offset where it is, so for such a
partition the dropped records are never read again; and `Consumer._new_offset` checks the
head of the acknowledged offsets against the committed offset only `if committed_offset:`
(None or 0 skips it), so the first commit jumps over them. One failing run: a joining worker
got settlements-0 (nothing committed yet), dropped offsets 0..4 during recovery, started
delivering at 5 and committed 6; five settlements were never applied.

A second, rarer way to the same loss: records fetched before that seek, handed to the stream
after it. They move Faust's read offset past the records the seek re-fetches (which it then
drops as already read), and its gap bookkeeping marks the skipped range as done.

The guard, on Faust's consumer of the app's own input streams (not table changelogs):
- `perform_seek` seeks every input partition: to its committed offset, or, when nothing is
  committed, to its log start (where `auto_offset_reset = earliest` begins) — and records that
  base as the committed offset, so the head check has something to check against.
- All seeks happen at one point of the consumer thread's order, and a record taken out of
  aiokafka before that point is discarded when it reaches the stream after it: the seek has
  rewound its partition, it is read again. A record already being handed over when the seek
  lands would leave its own offset as the read offset (Faust writes it after the hand-over,
  over the seek's), and Faust would then drop the records read again below it: the seek's
  read offset is put back.
- `_new_offset` commits only an unbroken run from the committed offset (`committable_offset`),
  and nothing while a partition's start is unknown (assigned, not yet sought).
- A read offset of 0 still records a gap (Faust's `if r_offset:` skips it), so a partition
  whose first readable record is past offset 1 (aborted transactions at the start) commits.
- The commit Faust makes at revocation sees the revoked partitions' acknowledged offsets
  (Faust forgets them just before), so it still covers the batches processed since the last
  commit, head check included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

# Offsets commit as an unbroken run from the committed offset, except that the one offset at
# the head may be missing: in a transactional input the next offset after a commit is often
# the transaction's commit marker, which is never delivered as a record. (Longer runs of
# undeliverable offsets — aborted records — arrive as Faust's gaps, which count as done.)
MAX_HEAD_SKIP = 1

# Faust's consumer state per partition that a revocation forgets
_PER_PARTITION = ("_committed_offset", "_read_offset", "_acked", "_acked_index", "_gap")


def committable_offset(committed: int, acked: Iterable[int]) -> tuple[int | None, set[int]]:
    """Given the committed offset (next offset to read) and the acknowledged offsets: the next
    offset to commit (None: nothing new), and the acknowledged offsets it settles (covered
    by it or already below the committed offset; the caller forgets them)."""
    done = set(acked)
    settled = {offset for offset in done if offset < committed}
    pending = sorted(done - settled)
    if not pending or pending[0] > committed + MAX_HEAD_SKIP:
        return None, settled  # an unprocessed record at the head holds the commit back
    end = pending[0]
    for offset in pending[1:]:
        if offset != end + 1:
            break
        end = offset
    settled.update(range(pending[0], end + 1))
    return end + 1, settled


class OffsetGuard:
    """Wraps the offset bookkeeping of one app's aiokafka consumer (see the module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.consumer = consumer = app.consumer
        self.thread = consumer._thread
        self.discarded = 0  # records dropped because a seek superseded them
        self._seeks = 0  # seeks done, counted in the consumer thread
        self._drained_at = 0  # `_seeks` when the last fetch took records out of aiokafka
        self._seeking = 0  # perform_seek calls in progress
        # Read offsets the last seek set (see `getmany`), and how many seeks set them.
        self._sought: dict[TP, int | None] = {}
        self._seeks_recorded = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Offset bookkeeping of the partitions being revoked (see on_partitions_revoked)
        self._revoking: dict[TP, tuple[Any, ...]] = {}
        self._acks_enabled_for = app.topics.acks_enabled_for
        self._faust_new_offset = consumer._new_offset
        self._faust_getmany = consumer.getmany
        self._faust_on_revoked = consumer.on_partitions_revoked
        self._app_on_revoked = consumer._on_partitions_revoked
        self._faust_fetch_records = self.thread._fetch_records

    def install(self) -> None:
        consumer = self.consumer
        consumer.perform_seek = self.perform_seek
        consumer.getmany = self.getmany
        consumer._new_offset = self.new_offset
        consumer.on_partitions_revoked = self.on_partitions_revoked
        consumer._on_partitions_revoked = self._commit_revoked
        self.thread._fetch_records = self._fetch_records

    def guarded(self, tp: Any) -> bool:
        """An input of the app's agents: acknowledged and committed (table changelogs are
        neither; their positions are the recovery's business)."""
        return self._acks_enabled_for(tp.topic)

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, for never-committed partitions too."""
        consumer = self.consumer
        self._seeking += 1
        self._idle.clear()
        try:
            committed, bases = await self.thread.call_thread(self._seek_in_thread)
            sought: dict[TP, int | None] = {}
            for kafka_tp, offset in committed.items():
                tp = TP(kafka_tp.topic, kafka_tp.partition)
                base = bases.get(kafka_tp)
                if base is not None:
                    consumer._read_offset[tp] = sought[tp] = base
                    consumer._committed_offset[tp] = base
                    continue
                # Faust's own bookkeeping (perform_seek), for everything else
                consumer._read_offset[tp] = sought[tp] = (
                    offset if offset is not None and offset >= 0 else None)
                if offset is not None:
                    consumer._committed_offset[tp] = offset or None
            self._sought = sought
            self._seeks_recorded += 1
            if bases:
                log.debug("never-committed inputs start at their log start",
                          extra={"partitions": {f"{tp.topic}-{tp.partition}": offset
                                                for tp, offset in bases.items()}})
        finally:
            self._seeking -= 1
            if not self._seeking:
                self._idle.set()

    async def _seek_in_thread(self) -> tuple[dict[Any, int | None], dict[Any, int]]:
        """In the consumer thread: look up where every assigned partition starts, then seek
        them all with no await in between, so each fetch is wholly before or after."""
        from aiokafka.errors import IllegalStateError

        kafka = self.thread._ensure_consumer()
        assigned = kafka.assignment()
        committed = {tp: await kafka.committed(tp) for tp in assigned}
        unset = [tp for tp, offset in committed.items() if not offset and self.guarded(tp)]
        bases = dict(await kafka.beginning_offsets(unset)) if unset else {}
        if kafka.assignment() != assigned:
            raise IllegalStateError("assignment changed while seeking (rebalancing)")
        for tp, offset in committed.items():
            if offset:  # what aiokafka's seek_to_committed does
                kafka.seek(tp, offset)
        for tp, base in bases.items():
            kafka.seek(tp, base)
        self._seeks += 1
        return committed, bases

    async def _fetch_records(self, *args: Any, **kwargs: Any) -> Any:
        """In the consumer thread: Faust's fetch, noting which seek it came after."""
        records = await self._faust_fetch_records(*args, **kwargs)
        self._drained_at = self._seeks
        return records

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """Faust's getmany without input records a later seek has rewound over."""
        consumer = self.consumer
        async for tp, message in self._faust_getmany(timeout):
            guarded = self.guarded(tp)
            if guarded:
                if self._seeking:  # its offsets are being reset: decide once they are
                    await self._idle.wait()
                if self._drained_at != self._seeks:
                    self.discarded += 1
                    log.debug("discarded a record fetched before a seek; it is read again",
                              extra={"topic": tp.topic, "partition": tp.partition,
                                     "offset": message.offset})
                    continue
                if consumer._read_offset.get(tp) == 0 and message.offset > 1:
                    # Faust's gap for a jump past the read offset, which it skips when that is 0
                    await consumer._add_gap(tp, 1, message.offset)
            seeks = self._seeks_recorded
            yield tp, message
            # Faust's loop resumes this generator once it has handed `message` to the stream
            # and recorded its offset as the partition's read offset. The hand-over awaits, so
            # a seek may have rewound the partition and set its read offset meanwhile; Faust's
            # write came after it, and would drop the records the seek reads again (below the
            # message) without acknowledging them: restore what the seek set.
            if guarded:
                if self._seeking:
                    await self._idle.wait()
                if self._seeks_recorded != seeks and tp in self._sought:
                    log.info("a seek landed while a record was handed over; its read offset "
                             "is kept", extra={"topic": tp.topic, "partition": tp.partition,
                                               "offset": message.offset,
                                               "read_offset": self._sought[tp]})
                    consumer._read_offset[tp] = self._sought[tp]

    def new_offset(self, tp: TP) -> int | None:
        """Faust's `_new_offset`, with the head check for every guarded partition."""
        if not self.guarded(tp):
            return self._faust_new_offset(tp)
        consumer = self.consumer
        committed = consumer._committed_offset.get(tp)
        acked = consumer._acked.get(tp)
        if committed is None or not acked:
            return None  # assigned but not sought yet: where it starts is not known
        self._fill_gaps(tp, acked)
        offset, settled = committable_offset(committed, acked)
        if settled:
            acked[:] = sorted(set(acked) - settled)
            consumer._acked_index[tp].difference_update(settled)
        return offset

    def _fill_gaps(self, tp: TP, acked: list[int]) -> None:
        """Offsets Faust saw skipped while reading (markers, aborted records, compaction)
        count as acknowledged up to the highest acknowledged one, as in `_new_offset`."""
        gap = self.consumer._gap.get(tp)
        if not gap:
            return
        top = max(acked)
        intervals = sorted(gap.overlap(0, top), key=lambda interval: interval.begin)
        filled = [offset for interval in intervals
                  for offset in range(interval.begin, interval.end)]
        if filled:
            acked.extend(filled)
            gap.chop(0, max(filled[-1], top + 1))

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Faust forgets a revoked partition's offsets (committed, acknowledged, gaps) and
        only then lets the app finish its in-flight batches and commit them: acknowledged
        offsets it forgot leave a hole the head check rightly refuses to commit across (and
        under exactly-once the transaction holding their outputs stays open). So the app's
        part runs with that bookkeeping in place, and it is forgotten after."""
        consumer = self.consumer
        self._revoking = {tp: tuple(getattr(consumer, name).get(tp) for name in _PER_PARTITION)
                          for tp in revoked if self.guarded(tp)}
        try:
            await self._faust_on_revoked(revoked)
        finally:
            self._revoking = {}

    async def _commit_revoked(self, revoked: set[TP]) -> None:
        """The app's revocation handler (wait for in-flight batches, commit) with the revoked
        partitions' offset bookkeeping as it was before Faust forgot it."""
        consumer = self.consumer
        restored = self._revoking
        for tp, values in restored.items():
            for name, value in zip(_PER_PARTITION, values, strict=True):
                if value is not None:
                    getattr(consumer, name)[tp] = value
        try:
            await self._app_on_revoked(revoked)
        finally:
            for tp in restored:
                for name in _PER_PARTITION:
                    getattr(consumer, name).pop(tp, None)


def install(app: Any) -> OffsetGuard | None:
    """Guard `app`'s consumer (aiokafka driver, `auto_offset_reset = earliest`)."""
    from faust.transport.drivers.aiokafka import Consumer

    consumer = app.consumer
    if not isinstance(consumer, Consumer) or app.conf.consumer_auto_offset_reset != "earliest":
        log.warning("offset guard not installed: it needs the aiokafka driver and "
                    "consumer_auto_offset_reset = earliest")
        return None
    guard = OffsetGuard(app)
    guard.install()
    return guard
