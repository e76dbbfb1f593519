"""TimerIndex over a real RocksDB: timers fire once, at their due stream time, however they
were moved, and scans start past the popped (deleted) keys."""

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

    def put(self, key: bytes, value: bytes | None, event: Any) -> None:
        if value is None:
            self.db.delete(key)
            self.deleted += 1
        else:
            self.db.put(key, value)


def index(tmp_path: Path) -> tuple[TimerIndex, DirectWriter]:
    db = rocksdict.Rdict(str(tmp_path / "timers"), options=rocksdict.Options(raw_mode=True))
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db))
    writer = DirectWriter(db)
    return TimerIndex(table, writer, ("orders",), 0), writer  # type: ignore[arg-type]


EVENT = SimpleNamespace(message=SimpleNamespace(partition=0))


def test_timers_fire_once_in_due_order_after_moves(tmp_path: Path) -> None:
    timers, _ = index(tmp_path)
    for n in range(100):
        timers.move(b"o%03d" % n, None, 1_000 + n * 10, EVENT)
    assert timers.pop_due(0, 1_095, EVENT) == [b"o%03d" % n for n in range(10)]
    assert timers.pop_due(0, 1_095, EVENT) == []
    timers.move(b"o050", 1_500, 1_100, EVENT)  # moved earlier, still ahead of now
    timers.move(b"o060", 1_600, 0, EVENT)  # "evaluate when time moves": below the floor
    timers.move(b"o070", 1_700, None, EVENT)  # cancelled
    assert timers.pop_due(0, 1_100, EVENT) == [b"o060", b"o010", b"o050"]
    rest = timers.pop_due(0, 10_000, EVENT)
    assert rest == [b"o%03d" % n for n in range(11, 100) if n not in (50, 60, 70)]


def test_a_regained_partition_scans_from_its_first_key(tmp_path: Path) -> None:
    timers, writer = index(tmp_path)
    timers.move(b"a", None, 500, EVENT)
    assert timers.pop_due(0, 600, EVENT) == [b"a"]
    writer.db.put(timer_key(100, b"restored"), b"")  # written by recovery meanwhile
    timers.forget_partitions()
    assert timers.pop_due(0, 600, EVENT) == [b"restored"]
