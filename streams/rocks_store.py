"""Faust's RocksDB table store on the worker's shared memory budget (streams/rocks_options.py).

Faust builds a store per table from the app's `store` URL, resolving the scheme through its
store registry; `STORE_URL` names this class there. Everything else (one database per
partition, the changelog offset key, recovery) is Faust's own store.
"""

from __future__ import annotations

from typing import Any

import faust.stores
from faust.stores import rocksdb
from faust.types import AppT, CollectionT

from streams.rocks_options import TunedRocksDBOptions, shared_memory

STORE_SCHEME = "fstreams-rocksdb"
STORE_URL = f"{STORE_SCHEME}://"


class Store(rocksdb.Store):
    """A RocksDB store whose databases share the app's block cache and memtable budget."""

    def __init__(self, url: Any, app: AppT, table: CollectionT, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        # `self.options` is what Faust left of the table's options (read_only and driver
        # taken out); per-table sizes given there still win over the tuning's.
        self.rocksdb_options = TunedRocksDBOptions(shared_memory(app), **dict(self.options))
        self.use_rocksdict = True


faust.stores.STORES[STORE_SCHEME] = f"{__name__}:Store"
