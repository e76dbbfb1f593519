"""RocksDB options for the worker's tables: one memory budget for the whole process.

Faust opens one RocksDB database per table partition (14 in a 4-partition worker) and gives
each its own 64 MiB write buffers (up to 3) and its own 2 GiB block cache, so the worker's
memory follows the data it writes until every database has flushed its first 64 MiB, and the
caches then keep whatever was read: RSS grows with the orders processed. Here every database
of the worker shares one LRU block cache and one write buffer manager (a cap on the memtables
of all databases together, past which the largest memtable is flushed), and the index and
filter blocks live in that cache too instead of beside it, per open file. RocksDB's memory is
then bounded by `block_cache_mb + memtables_mb`, whatever the number of partitions or keys.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.types import AppT

MIB = 1024 * 1024


@dataclass(frozen=True)
class RocksTuning:
    """The knobs (from Settings): budgets shared by the process, sizes per database."""

    block_cache_mb: int = 32
    memtables_mb: int = 32
    write_buffer_mb: int = 8
    max_write_buffers: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> RocksTuning:
        return cls(block_cache_mb=settings.rocksdb_block_cache_mb,
                   memtables_mb=settings.rocksdb_memtables_mb,
                   write_buffer_mb=settings.rocksdb_write_buffer_mb,
                   max_write_buffers=settings.rocksdb_max_write_buffers)


class SharedMemory:
    """The block cache and write buffer manager every database of one app shares."""

    def __init__(self, tuning: RocksTuning) -> None:
        self.tuning = tuning
        self.cache = rocksdict.Cache(tuning.block_cache_mb * MIB)
        # No stall: over the budget RocksDB flushes early; writers are never blocked on it.
        self.write_buffers = rocksdict.WriteBufferManager(tuning.memtables_mb * MIB, False)

    def usage_mb(self) -> tuple[float, float]:
        """(block cache, memtables) in use now, MB."""
        return self.cache.get_usage() / MIB, self.write_buffers.get_usage() / MIB


_shared: weakref.WeakKeyDictionary[AppT, SharedMemory] = weakref.WeakKeyDictionary()


def attach(app: AppT, tuning: RocksTuning) -> SharedMemory:
    """Give `app`'s table stores one shared memory budget (call before tables open)."""
    memory = _shared[app] = SharedMemory(tuning)
    return memory


def shared_memory(app: AppT) -> SharedMemory:
    """The app's shared budget; an app nobody attached one to gets the defaults."""
    memory = _shared.get(app)
    if memory is None:
        memory = attach(app, RocksTuning())
    return memory


def no_wal() -> rocksdict.WriteOptions:
    """Writes without RocksDB's write-ahead log.

    A table's database is a cache of its changelog, not a source of truth: Faust keeps the
    changelog offset it covers in the same database, written after the data it covers. Without
    the log a kill -9 loses the memtables (at most the shared memtable budget), and what
    survives is a prefix of the writes, its offset key included, so recovery reads the
    changelog from that older offset and ends where it would have. A database that is closed
    (Faust drops them on stop) flushes its memtables first, as RocksDB does when the log is
    off. The log cost ~7 us of a ~11 us put of a 4 KB order record here."""
    options = rocksdict.WriteOptions()
    options.disable_wal = True
    return options


class TunedRocksDBOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict driver) on the app's shared memory budget."""

    def __init__(self, memory: SharedMemory, **kwargs: Any) -> None:
        tuning = memory.tuning
        kwargs.setdefault("write_buffer_size", tuning.write_buffer_mb * MIB)
        kwargs.setdefault("max_write_buffer_number", tuning.max_write_buffers)
        kwargs["use_rocksdict"] = True
        super().__init__(**kwargs)
        self.memory = memory

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        access = (rocksdict.AccessType.read_write() if self.ttl is None
                  else rocksdict.AccessType.with_ttl(self.ttl))
        db = rocksdict.Rdict(str(path), options=self.as_options(), access_type=access)
        db.set_read_options(rocksdict.ReadOptions())
        db.set_write_options(no_wal())
        return db

    def as_options(self) -> rocksdict.Options:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(self.memory.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.memory.cache)
        # Index and filter blocks count against the shared cache (else every open SST file
        # holds its own outside any budget); L0's stay pinned so point reads stay cheap.
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options
