"""The offset guard's commit rule (exhaustively) and its bookkeeping around Faust's consumer:
never commit past a record nobody processed; step over one offset at the head (a transaction
marker); never stall on offsets that are not records."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from streams.offset_guard import MAX_HEAD_SKIP, OffsetGuard, committable_offset

INPUT = TP("orders", 0)
CHANGELOG = TP("app-order-state-changelog", 0)


def reference(committed: int, acked: set[int]) -> int | None:
    """The rule stated plainly: the commit starts at the committed offset, or one past it when
    that one offset is missing, and runs while every offset is acknowledged."""
    start = committed if committed in acked else committed + 1
    if start not in acked:
        return None
    end = start
    while end in acked:
        end += 1
    return end


@pytest.mark.parametrize("committed", range(5))
def test_rule_matches_its_statement_for_every_small_case(committed: int) -> None:
    rng = random.Random(committed)
    for size in range(10):
        for combo in itertools.combinations(range(10), size):
            acked = set(combo)
            offset, settled = committable_offset(committed, acked)
            assert offset == reference(committed, acked), (committed, sorted(acked))
            below = {a for a in acked if a < committed}
            covered = set() if offset is None else {a for a in acked if committed <= a < offset}
            assert settled == below | covered
            if offset is not None:
                assert offset > committed
                # nothing unacknowledged is committed over, except the one offset at the head
                assert set(range(committed + MAX_HEAD_SKIP, offset)) <= acked
                assert offset not in acked  # the run ends at the first hole
            # repeats and order (Faust's list holds both) change nothing
            repeated = [*combo, *combo]
            rng.shuffle(repeated)
            assert committable_offset(committed, repeated) == (offset, settled)


def test_records_dropped_at_the_start_of_a_never_committed_partition_hold_the_commit() -> None:
    # A failing rebalance run: offsets 0..4 were taken from the fetcher and dropped during
    # recovery, delivery started at 5. With the log start (0) as the base nothing commits.
    assert committable_offset(0, [5, 6, 7]) == (None, set())


def test_one_missing_offset_at_the_head_is_stepped_over() -> None:
    # Committed 10 points at a transaction's commit marker; the next record is 11.
    assert committable_offset(10, [11, 12, 13]) == (14, {11, 12, 13})


def test_two_missing_offsets_at_the_head_hold_the_commit() -> None:
    assert committable_offset(10, [12, 13]) == (None, set())


def test_a_partition_starts_at_its_base() -> None:
    assert committable_offset(0, [0, 1, 2]) == (3, {0, 1, 2})
    assert committable_offset(7, [7, 8]) == (9, {7, 8})  # retention moved the log start


def test_commit_stops_at_the_first_hole_and_keeps_the_rest() -> None:
    assert committable_offset(0, [0, 1, 2, 4, 5]) == (3, {0, 1, 2})


def test_offsets_below_the_committed_one_are_settled_without_a_commit() -> None:
    assert committable_offset(5, [2, 3]) == (None, {2, 3})
    assert committable_offset(5, [2, 3, 5, 6]) == (7, {2, 3, 5, 6})


def test_repeated_offsets_do_not_cut_the_run_short() -> None:
    # Faust's own rule stops at a repeat (gap offsets are added to the list again), so its
    # commits crawl one offset per interval.
    assert committable_offset(3, [3, 4, 4, 5, 5, 6])[0] == 7


class FakeConsumer:
    """The parts of Faust's consumer the guard reads and wraps."""

    def __init__(self, messages: list[Any] | None = None) -> None:
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._acked: dict[TP, list[int]] = defaultdict(list)
        self._acked_index: dict[TP, set[int]] = defaultdict(set)
        self._gap: dict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._thread = SimpleNamespace(_fetch_records=self._fetch_records)
        self.messages = messages or []
        self.guard: OffsetGuard | None = None
        self.late_acks: list[int] = []  # acknowledged while the app finishes its batches
        self.committed_at_revocation: dict[TP, int | None] = {}

    async def _fetch_records(self) -> dict[TP, list[Any]]:
        return {}

    def _new_offset(self, tp: TP) -> int:
        return -1  # Faust's own rule, for partitions the guard leaves alone

    async def getmany(self, timeout: float) -> Any:
        for message in self.messages:
            yield message.tp, message

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self._gap[tp].addi(offset_from, offset_to + 1)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:  # as Faust: forget the partitions' offsets, then call the app
            for state in (self._committed_offset, self._read_offset, self._acked,
                          self._acked_index, self._gap):
                state.pop(tp, None)
        await self._on_partitions_revoked(revoked)

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        """The app's part: in-flight batches finish (late acks), then it commits."""
        assert self.guard is not None
        for tp in revoked:
            ack(self, tp, *self.late_acks)
        self.committed_at_revocation = {tp: self.guard.new_offset(tp) for tp in revoked}


def guarded(consumer: FakeConsumer) -> OffsetGuard:
    app = SimpleNamespace(consumer=consumer, topics=SimpleNamespace(
        acks_enabled_for=lambda topic: topic == INPUT.topic))
    guard = OffsetGuard(app)
    guard.install()
    consumer.guard = guard
    return guard


def ack(consumer: FakeConsumer, tp: TP, *offsets: int) -> None:
    consumer._acked[tp].extend(offsets)
    consumer._acked_index[tp].update(offsets)


def test_nothing_commits_before_the_partition_is_sought() -> None:
    consumer = FakeConsumer()
    guard = guarded(consumer)
    ack(consumer, INPUT, 5, 6)
    assert guard.new_offset(INPUT) is None
    assert consumer._acked[INPUT] == [5, 6]  # kept for when the base is known
    consumer._committed_offset[INPUT] = 5
    assert guard.new_offset(INPUT) == 7
    assert consumer._acked[INPUT] == [] and not consumer._acked_index[INPUT]


def test_partitions_it_does_not_guard_keep_fausts_rule() -> None:
    consumer = FakeConsumer()
    guard = guarded(consumer)
    ack(consumer, CHANGELOG, 5)
    assert guard.new_offset(CHANGELOG) == -1


def test_gaps_faust_saw_while_reading_count_as_done() -> None:
    consumer = FakeConsumer()
    guard = guarded(consumer)
    consumer._committed_offset[INPUT] = 100
    consumer._gap[INPUT].addi(101, 106)  # aborted records 101..105
    ack(consumer, INPUT, 100, 106, 107)
    assert guard.new_offset(INPUT) == 108
    assert not consumer._gap[INPUT]


def test_a_gap_past_the_acknowledged_offsets_waits() -> None:
    consumer = FakeConsumer()
    guard = guarded(consumer)
    consumer._committed_offset[INPUT] = 0
    consumer._gap[INPUT].addi(3, 9)
    ack(consumer, INPUT, 0, 1)
    assert guard.new_offset(INPUT) == 2
    assert sorted(consumer._gap[INPUT]) == sorted(IntervalTree.from_tuples([(3, 9)]))


def test_the_commit_at_revocation_covers_what_was_acknowledged_before_it() -> None:
    consumer = FakeConsumer()
    guarded(consumer)
    consumer._committed_offset[INPUT] = 10
    ack(consumer, INPUT, 10, 11)
    consumer.late_acks = [12]
    asyncio.run(consumer.on_partitions_revoked({INPUT}))
    assert consumer.committed_at_revocation == {INPUT: 13}
    assert INPUT not in consumer._acked and INPUT not in consumer._committed_offset


def test_the_commit_at_revocation_checks_the_head() -> None:
    consumer = FakeConsumer()
    guard = guarded(consumer)
    consumer._committed_offset[INPUT] = 10
    ack(consumer, INPUT, 13)
    consumer.late_acks = [14]
    asyncio.run(consumer.on_partitions_revoked({INPUT}))
    assert consumer.committed_at_revocation == {INPUT: None}
    assert guard.new_offset(INPUT) is None  # forgotten after: the next owner reads from 10


def message(tp: TP, offset: int) -> Any:
    return SimpleNamespace(tp=tp, offset=offset)


def delivered(guard: OffsetGuard) -> list[tuple[str, int]]:
    async def drain() -> list[tuple[str, int]]:
        return [(tp.topic, msg.offset) async for tp, msg in guard.getmany(timeout=1.0)]

    return asyncio.run(drain())


def test_input_records_fetched_before_a_seek_are_discarded() -> None:
    consumer = FakeConsumer([message(INPUT, 7), message(CHANGELOG, 3), message(INPUT, 8)])
    guard = guarded(consumer)
    guard._drained_at, guard._seeks = 4, 5  # the seek came after the fetch
    assert delivered(guard) == [(CHANGELOG.topic, 3)]
    assert guard.discarded == 2
    guard._drained_at = 5  # fetched after it
    assert delivered(guard) == [(INPUT.topic, 7), (CHANGELOG.topic, 3), (INPUT.topic, 8)]


def test_a_jump_from_read_offset_zero_is_a_gap() -> None:
    # Faust records a gap only `if r_offset:`; from offset 0 a partition whose first records
    # were aborted would otherwise never commit.
    consumer = FakeConsumer([message(INPUT, 4)])
    guard = guarded(consumer)
    consumer._read_offset[INPUT] = 0
    consumer._committed_offset[INPUT] = 0
    assert delivered(guard) == [(INPUT.topic, 4)]
    ack(consumer, INPUT, 4)
    assert guard.new_offset(INPUT) == 5


def hand_over(guard: OffsetGuard, consumer: FakeConsumer, seek_to: int | None) -> list[int]:
    """Faust's drain loop over the guard's getmany: each record is handed to the stream (an
    await, during which a seek may land: `seek_to`, on the first record) and its offset is
    then recorded as the read offset. Returns the read offset after each record."""
    async def drain() -> list[int]:
        seen: list[int] = []
        async for tp, msg in guard.getmany(timeout=1.0):
            if seek_to is not None and not seen:  # perform_seek's bookkeeping, mid hand-over
                guard._sought = {INPUT: seek_to}
                guard._seeks_recorded += 1
                consumer._read_offset[INPUT] = seek_to
            consumer._read_offset[tp] = msg.offset  # Faust's write after the hand-over
            seen.append(msg.offset)
        return [consumer._read_offset[INPUT] or 0]

    return asyncio.run(drain())


def test_a_seek_during_a_hand_over_keeps_its_read_offset() -> None:
    # The race that explains a lost update the rebalance test shows about once in 50 runs
    # (one event of a partition its worker kept, held at the rebalance, never applied): the
    # record handed over when the seek landed leaves its offset as the read offset, Faust
    # drops the records read again below it, and when that is only the one at the committed
    # offset the head rule steps over it.
    consumer = FakeConsumer([message(INPUT, 12)])
    guard = guarded(consumer)
    assert hand_over(guard, consumer, seek_to=11) == [11]


def test_without_a_seek_the_hand_over_records_the_offset() -> None:
    consumer = FakeConsumer([message(INPUT, 12), message(INPUT, 13)])
    guard = guarded(consumer)
    assert hand_over(guard, consumer, seek_to=None) == [13]
