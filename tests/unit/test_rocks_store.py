"""The worker's table store (streams/rocks_store.py): Faust's RocksDB store, with every
partition's database on one block cache and one memtable budget taken from Settings."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from streams.app import create_app
from streams.batching import enter_event
from streams.rocks_options import MIB, RocksTuning, SharedMemory, TunedRocksDBOptions
from streams.rocks_store import Store
from streams.settings import Settings


class PartitionEvent:
    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = type("Message", (), {"partition": partition})()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Any]:
    settings = Settings(data_dir=tmp_path, app_id="rocks-store-test", partitions=2,
                        rocksdb_block_cache_mb=8, rocksdb_memtables_mb=4,
                        rocksdb_write_buffer_mb=1)
    pipeline = create_app(settings)
    yield pipeline
    for table in pipeline.app.tables.values():
        for db in table.data._dbs.values():
            db.close()


def put(table: Any, partition: int, key: bytes, value: bytes) -> None:
    event = PartitionEvent(partition)  # held: Faust keeps only a weak reference
    enter_event(event)  # type: ignore[arg-type]
    table.data[key] = value


def test_tables_share_the_settings_budget(pipeline: Any) -> None:
    first = pipeline.bytes_table("first")
    second = pipeline.bytes_table("second")
    assert isinstance(first.data, Store) and isinstance(second.data, Store)
    options = [t.data.rocksdb_options for t in (first, second)]
    assert all(isinstance(o, TunedRocksDBOptions) for o in options)
    assert options[0].memory is options[1].memory  # one cache and manager per app
    memory = options[0].memory
    assert memory.tuning == RocksTuning(block_cache_mb=8, memtables_mb=4, write_buffer_mb=1,
                                        max_write_buffers=2)
    assert options[0].write_buffer_size == 1 * MIB
    assert memory.write_buffers.get_buffer_size() == 4 * MIB


def test_writes_read_back_and_offsets_persist_per_partition(pipeline: Any) -> None:
    table = pipeline.bytes_table("orders")
    put(table, 0, b"a", b"1")
    put(table, 1, b"b", b"2")
    table.data.set_persisted_offset(TP("changelog", 1), 41)
    assert table.data._db_for_partition(0).get(b"a") == b"1"
    assert table.data._db_for_partition(1).get(b"b") == b"2"
    assert table.data._db_for_partition(0).get(b"b") is None
    assert table.data.persisted_offset(TP("changelog", 1)) == 41
    assert table.data.persisted_offset(TP("changelog", 0)) is None


def test_memtables_stay_within_the_shared_budget(tmp_path: Path) -> None:
    """Six databases each written just under their own 2 MB write buffer would keep ~11 MB
    of memtables among them, none ever full enough to flush by itself; the shared 4 MB
    budget flushes the largest ones, so once those flushes are done the memtables of all
    together are back within it."""
    memory = SharedMemory(RocksTuning(block_cache_mb=4, memtables_mb=4, write_buffer_mb=2))
    options = TunedRocksDBOptions(memory)
    dbs = [options.open(tmp_path / f"db-{i}") for i in range(6)]
    try:
        value = os.urandom(1000)
        for n in range(6 * 1800):  # ~1.8 MB per database
            dbs[n % len(dbs)].put(b"key-%08d" % n, value)
        deadline = time.monotonic() + 30
        while any(db.property_int_value("rocksdb.num-running-flushes")
                  or db.property_int_value("rocksdb.mem-table-flush-pending") for db in dbs):
            assert time.monotonic() < deadline, "flushes did not finish"
            time.sleep(0.05)
        held = sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs) / MIB
        # The manager flushes the largest memtable once the budget is passed, while the others
        # keep filling until the flushes catch up: allow two write buffers over the budget
        # (6.5 MB was seen on a loaded machine). Unbudgeted they would hold ~11 MB.
        assert held < 4 + 2 * 2, f"memtables hold {held:.1f} MB over a 4 MB budget"
        assert dbs[3].get(b"key-%08d" % 3) == value
    finally:
        for db in dbs:
            db.close()


def test_malloc_arenas_cap_is_taken_on_glibc() -> None:
    from streams import malloc_arenas

    assert malloc_arenas.limit(0) is False  # 0 keeps glibc's default: nothing to do
    if os.confstr("CS_GNU_LIBC_VERSION") is None:
        pytest.skip("not glibc")
    assert malloc_arenas.limit(8) is True


_KILLED_WRITER = """
import os, sys
from pathlib import Path
from streams.rocks_options import RocksTuning, SharedMemory, TunedRocksDBOptions
db = TunedRocksDBOptions(SharedMemory(RocksTuning())).open(Path(sys.argv[1]))
for n in range(int(sys.argv[2])):
    db.put(b"key-%08d" % n, b"v" * 100)
    db.put(b"__faust\\0offset__", str(n).encode())  # after its data, as Faust's store does
if sys.argv[3] == "close":
    db.close()
os._exit(0)  # no interpreter shutdown: as a kill -9 would leave it
"""


@pytest.mark.parametrize("ending", ["close", "kill"])
def test_databases_write_without_the_log_and_keep_a_consistent_prefix(
        tmp_path: Path, ending: str) -> None:
    """Table writes skip RocksDB's write-ahead log (a table is a cache of its changelog).
    Closed, a database keeps every write (its memtables are flushed on close); killed, it
    loses its memtables and is left a prefix of its writes whose offset key covers no more
    than the data it holds, so recovery resumes the changelog from there."""
    import subprocess
    import sys

    path = tmp_path / "db"
    writes = 500
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path), str(writes), ending],
                   check=True, cwd=Path(__file__).resolve().parents[2])
    db = TunedRocksDBOptions(SharedMemory(RocksTuning())).open(path)
    try:
        offset = db.get(b"__faust\0offset__")
        kept = sum(1 for key in db.keys() if key.startswith(b"key-"))  # noqa: SIM118 (Rdict)
        if ending == "close":
            assert (offset, kept) == (str(writes - 1).encode(), writes)
        else:  # the log would have replayed all of them on open
            assert kept < writes, "a killed database kept every write: the log is on"
            assert offset is None or int(offset) < kept
    finally:
        db.close()
