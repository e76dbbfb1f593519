"""TimerIndex over a real RocksDB: timers fire once, at their due stream time, however they
were moved, and scans start past the settled (deleted) keys."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import rocksdict

from streams.timers import TimerIndex, timer_key


class DirectWriter:
    """Applies writes to the partition's database, as TableWriter does (minus the changelog)."""

    def __init__(self, db: rocksdict.Rdict) -> None:
        self.db = db
        self.deleted = 0
        self.unacked: dict[int, dict[bytes, Any]] = {}  # every write lands at once here

    def put(self, key: bytes, value: bytes | None, event: Any) -> None:
        if value is None:
            self.db.delete(key)
            self.deleted += 1
        else:
            self.db.put(key, value)


class LoggingWriter(DirectWriter):
    """DirectWriter that also keeps the order of its writes."""

    def __init__(self, db: rocksdict.Rdict) -> None:
        super().__init__(db)
        self.log: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes | None, event: Any) -> None:
        self.log.append((key, value))
        super().put(key, value, event)


def index(tmp_path: Path) -> tuple[TimerIndex, LoggingWriter]:
    db = rocksdict.Rdict(str(tmp_path / "timers"), options=rocksdict.Options(raw_mode=True))
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db))
    writer = LoggingWriter(db)
    return TimerIndex(table, writer, ("orders",), 0), writer  # type: ignore[arg-type]


EVENT = SimpleNamespace(message=SimpleNamespace(partition=0))


def fire(timers: TimerIndex, now_ms: int) -> list[bytes]:
    """What an agent does with due timers: find them, act, then settle each (no next due)."""
    found = timers.due(0, now_ms)
    for due, key in found:
        timers.settle(key, None, [due], EVENT)
    return [key for _, key in found]


def test_timers_fire_once_in_due_order_after_moves(tmp_path: Path) -> None:
    timers, _ = index(tmp_path)
    for n in range(100):
        timers.move(b"o%03d" % n, None, 1_000 + n * 10, EVENT)
    assert fire(timers, 1_095) == [b"o%03d" % n for n in range(10)]
    assert fire(timers, 1_095) == []
    timers.move(b"o050", 1_500, 1_100, EVENT)  # moved earlier, still ahead of now
    timers.move(b"o060", 1_600, 0, EVENT)  # "evaluate when time moves": below the floor
    timers.move(b"o070", 1_700, None, EVENT)  # cancelled
    assert fire(timers, 1_100) == [b"o060", b"o010", b"o050"]
    rest = fire(timers, 10_000)
    assert rest == [b"o%03d" % n for n in range(11, 100) if n not in (50, 60, 70)]


def test_a_regained_partition_scans_from_its_first_key(tmp_path: Path) -> None:
    timers, writer = index(tmp_path)
    timers.move(b"a", None, 500, EVENT)
    assert fire(timers, 600) == [b"a"]
    writer.db.put(timer_key(100, b"restored"), b"")  # written by recovery meanwhile
    timers.forget_partitions()
    assert fire(timers, 600) == [b"restored"]


class HeldAcks:
    """The sink's side of an at-least-once TableWriter: changelog records are acknowledged
    only when the test says so (what a slow broker round trip looks like to the agent)."""

    def __init__(self) -> None:
        self.waiting: list[Any] = []

    def produce_after_outputs(self, topic: str, key: bytes, value: bytes | None,
                              headers: Any, partition: int, then: Any) -> None:
        self.waiting.append(then)

    def ack_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for then in waiting:
            then()


def test_timers_written_but_not_acknowledged_fire_the_same(tmp_path: Path) -> None:
    """With TableWriter(after_outputs=True) a timer is in RocksDB only once its changelog
    record is acknowledged; until then the index reads the writer's unacknowledged writes."""
    from streams.batching import TableWriter

    db = rocksdict.Rdict(str(tmp_path / "timers"), options=rocksdict.Options(raw_mode=True))
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db),
                            changelog_topic=SimpleNamespace(get_topic_name=lambda: "timers"))
    sink = HeldAcks()
    writer = TableWriter(table, sink, after_outputs=True)  # type: ignore[arg-type]
    timers = TimerIndex(table, writer, ("orders",), 0)  # type: ignore[arg-type]
    for n in range(10):
        timers.move(b"o%d" % n, None, 1_000 + n, EVENT)
    assert list(db.keys()) == []  # nothing acknowledged: RocksDB untouched
    assert fire(timers, 1_004) == [b"o%d" % n for n in range(5)]
    timers.move(b"o7", 1_007, None, EVENT)  # cancelled before its add was acknowledged
    sink.ack_all()
    assert writer.unacked == {0: {}}
    assert list(db.keys()) == [timer_key(1_000 + n, b"o%d" % n) for n in (5, 6, 8, 9)]
    timers.move(b"o9", 1_009, 900, EVENT)  # pending again: due below the floor
    assert fire(timers, 1_008) == [b"o9", b"o5", b"o6", b"o8"]
    sink.ack_all()
    assert fire(timers, 10_000) == []
    assert list(db.keys()) == []


def entries(db: rocksdict.Rdict) -> set[bytes]:
    keys = list(db.keys())  # raw-mode Rdict: iterating the dict itself does not give keys
    return {bytes(k) for k in keys if bytes(k)[:1].isdigit()}


def test_found_timers_stay_until_settled(tmp_path: Path) -> None:
    timers, writer = index(tmp_path)
    timers.move(b"a", None, 100, EVENT)
    timers.move(b"b", None, 200, EVENT)
    timers.move(b"c", None, 900, EVENT)
    assert timers.due(0, 500) == [(100, b"a"), (200, b"b")]
    assert entries(writer.db) == {timer_key(100, b"a"), timer_key(200, b"b"),
                                  timer_key(900, b"c")}
    timers.settle(b"a", 700, [100], EVENT, reassert=True)  # moved past now
    timers.settle(b"b", None, [200], EVENT)  # no timer any more
    assert entries(writer.db) == {timer_key(700, b"a"), timer_key(900, b"c")}
    assert timers.due(0, 800) == [(700, b"a")]


def test_a_kept_timer_is_found_again(tmp_path: Path) -> None:
    timers, writer = index(tmp_path)
    timers.move(b"gone", None, 100, EVENT)
    assert timers.due(0, 500) == [(100, b"gone")]
    timers.keep(b"gone", 100, 0)  # its record's tombstone is not written yet
    assert timers.due(0, 500) == [(100, b"gone")]
    timers.settle(b"gone", None, [100], EVENT)  # found with no record: deleted
    assert timers.due(0, 500) == [] and entries(writer.db) == set()


def test_reassert_writes_an_entry_a_crash_may_have_lost(tmp_path: Path) -> None:
    timers, writer = index(tmp_path)
    timers.settle(b"a", 700, [700, 100], EVENT)
    assert writer.log == [(timer_key(100, b"a"), None)]  # 700 is there: not written again
    writer.log.clear()
    timers.settle(b"a", 700, [700, 100], EVENT, reassert=True)
    assert writer.log[0] == (timer_key(700, b"a"), b"")


def test_every_prefix_of_a_settle_leaves_the_old_or_the_new_entry(tmp_path: Path) -> None:
    """A crash keeps a prefix of a batch's writes. The record may survive old (due 100) or new
    (due 700), independently (it is another changelog): each prefix must hold an entry of
    one of the two dues, so the order is evaluated again and its timer repaired."""
    timers, writer = index(tmp_path / "live")
    timers.move(b"a", None, 100, EVENT)
    assert timers.due(0, 500) == [(100, b"a")]
    writer.log.clear()
    timers.settle(b"a", 700, [100, 100], EVENT, reassert=True)
    assert len(writer.log) == 2
    for cut in range(len(writer.log) + 1):
        kept = {timer_key(100, b"a")}
        for key, value in writer.log[:cut]:
            if value is None:
                kept.discard(key)
            else:
                kept.add(key)
        assert kept & {timer_key(100, b"a"), timer_key(700, b"a")}, writer.log[:cut]


def test_a_limited_scan_leaves_the_rest_due_in_order(tmp_path: Path) -> None:
    timers, _ = index(tmp_path)
    for n in range(10):
        timers.move(b"o%03d" % n, None, 1_000 + n, EVENT)

    def step(now: int, limit: int | None = 3) -> list[bytes]:
        found = timers.due(0, now, limit)
        for due_ms, key in found:
            timers.settle(key, None, [due_ms], EVENT)  # evaluated: no timer any more
        return [key for _, key in found]

    assert step(1_007) == [b"o000", b"o001", b"o002"]
    timers.move(b"late", None, 500, EVENT)  # scheduled below the limited floor: still found
    assert step(1_007) == [b"late", b"o003", b"o004"]
    assert step(1_007) == [b"o005", b"o006", b"o007"]
    assert step(1_007) == []
    assert step(2_000, None) == [b"o008", b"o009"]


def test_a_limited_scan_counts_unacknowledged_timers_in_order(tmp_path: Path) -> None:
    from streams.batching import TableWriter

    db = rocksdict.Rdict(str(tmp_path / "timers"), options=rocksdict.Options(raw_mode=True))
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db),
                            changelog_topic=SimpleNamespace(get_topic_name=lambda: "timers"))
    sink = HeldAcks()
    writer = TableWriter(table, sink, after_outputs=True)  # type: ignore[arg-type]
    timers = TimerIndex(table, writer, ("orders",), 0)  # type: ignore[arg-type]
    for n in (0, 2, 4):
        timers.move(b"o%d" % n, None, 1_000 + n, EVENT)
    sink.ack_all()  # these are in RocksDB
    for n in (1, 3):
        timers.move(b"o%d" % n, None, 1_000 + n, EVENT)  # these only in memory
    assert [k for _, k in timers.due(0, 1_010, 2)] == [b"o0", b"o1"]
    assert [k for _, k in timers.due(0, 1_010, 2)] == [b"o2", b"o3"]
    assert [k for _, k in timers.due(0, 1_010, 2)] == [b"o4"]
