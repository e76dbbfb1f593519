"""Each partition's census (`tables.census`), kept in the timers table beside its stream clock.

The census lives under a reserved key that sorts after every timer (like the clock), written
at most once per batch per partition and only when it changed, so it goes to the changelog
with the partition's other writes and survives restarts and rebalances: a worker that takes
a partition over reads the census its previous owner left, with no table scan.

A partition without a stored census (new, or its census was deleted) is recounted once from
its records in the order table's RocksDB.

Under exactly-once the census commits in the same transaction as the records it counts.
Under at-least-once a crash can leave a batch's record writes and its census write apart
(they go to two changelogs); the batch is processed again from the committed offsets, and the
census may then be off by the orders of that batch. Deleting the key (or `fstreams replay`,
which writes a recount) sets it right.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from faust.types import EventT, TableT

from streams.batching import TableWriter, enter_event
from tables import census as tally
from tables.census import Census

CENSUS_KEY = b"\xffcensus"


def dumps(census: Census) -> bytes:
    return json.dumps(census, separators=(",", ":"), sort_keys=True).encode()


class CensusStore:
    def __init__(self, table: TableT, writer: TableWriter, order_table: TableT) -> None:
        self.table = table  # the timers table
        self.writer = writer
        self.order_table = order_table
        self._censuses: dict[int, Census] = {}
        self._saved: dict[int, bytes] = {}  # last census written per partition

    def of(self, partition: int, event: EventT) -> Census:
        """The partition's census to count into (`event` is of that partition)."""
        census = self._censuses.get(partition)
        if census is None:
            enter_event(event)
            raw = self.table.get(CENSUS_KEY)
            if raw is None:
                census = tally.recount(self._records(partition))
            else:
                census = tally.restore(json.loads(raw))
                self._saved[partition] = raw
            self._censuses[partition] = census
        return census

    def save(self, partition: int, event: EventT) -> None:
        """Write the partition's census if it changed since it was last written."""
        census = self._censuses.get(partition)
        if census is None:
            return
        raw = dumps(census)
        if self._saved.get(partition) != raw:
            self.writer.put(CENSUS_KEY, raw, event)
            self._saved[partition] = raw

    def peek(self, partition: int) -> Census | None:
        """The partition's census for reading (queries): counted here since assignment, else
        as stored (None when nothing is stored yet). Never writes."""
        census = self._censuses.get(partition)
        if census is not None:
            return census
        try:
            raw = self.table.data._db_for_partition(partition).get(CENSUS_KEY)
        except Exception:  # the partition's store is closing (rebalance): not known here
            return None
        return None if raw is None else tally.restore(json.loads(raw))

    def forget(self) -> None:
        """After a rebalance: partitions regained later are read from the store again."""
        self._censuses.clear()
        self._saved.clear()

    def _records(self, partition: int) -> Iterator[dict[str, Any]]:
        """The partition's order records; Faust keeps its persisted offset in the same
        database under a key of its own, which is not a record."""
        store = self.order_table.data
        db = store._db_for_partition(partition)
        bookkeeping = getattr(store, "offset_key", None)
        for key, raw in db.items():
            if key != bookkeeping and not key.startswith(b"\xff"):
                yield json.loads(raw)
