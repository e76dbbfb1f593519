"""Each partition's census in the timers table, on Faust's real RocksDB store (no broker: the
changelog writes go to a recording sink): recounted once when absent, written only when it
changed, read back as stored after a rebalance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from streams.batching import TableWriter, enter_event
from streams.census_store import CENSUS_KEY, CensusStore
from tables import census as tally


class PartitionEvent:
    """The current event a table write of `partition` needs (as the agent's tick uses)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = type("Message", (), {"partition": partition})()


class RecordingSink:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None, bytes | None, int]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None, partition: int = -1) -> None:
        self.produced.append((topic, key, value, partition))


def order(status: str | None, firing: int = 0) -> bytes:
    record: dict[str, Any] = {"sla": {"alerts": [{"status": "firing"}] * firing}}
    if status is not None:
        record[tally.COUNTED_STATUS] = status
    return json.dumps(record).encode()


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    app = faust.App("census-store-test", store="rocksdb://", datadir=str(tmp_path),
                    autodiscover=False)
    orders = app.Table("order-state", key_type=bytes, value_type=bytes, partitions=2)
    timers = app.Table("order-timers", key_type=bytes, value_type=bytes, partitions=2)
    yield orders, timers
    for table in (orders, timers):
        for db in table.data._dbs.values():
            db.close()


def put(table: Any, partition: int, key: bytes, value: bytes) -> None:
    event = PartitionEvent(partition)  # held: Faust keeps only a weak reference to it
    enter_event(event)  # type: ignore[arg-type]
    table.data[key] = value


def test_absent_census_is_recounted_then_saved_only_when_changed(tables: Any) -> None:
    orders, timers = tables
    put(orders, 1, b"o-1", order("shipped", firing=1))
    put(orders, 1, b"o-2", order("shipped"))
    put(orders, 1, b"o-3", order(None))  # an orphan: not counted
    put(orders, 0, b"o-4", order("delivered"))  # another partition
    orders.data.set_persisted_offset(TP("changelog", 1), 42)  # Faust's key in the same db
    sink = RecordingSink()
    store = CensusStore(timers, TableWriter(timers, sink), orders)  # type: ignore[arg-type]
    event = PartitionEvent(1)

    census = store.of(1, event)  # type: ignore[arg-type]
    assert census == {"orders": {"shipped": 2}, "firing_alerts": 1}
    store.save(1, event)  # type: ignore[arg-type]
    store.save(1, event)  # type: ignore[arg-type]  # unchanged: not written again
    assert [(key, partition) for _, key, _, partition in sink.produced] == [(CENSUS_KEY, 1)]
    tally.count_alerts(census, 1, 0)
    store.save(1, event)  # type: ignore[arg-type]
    assert len(sink.produced) == 2
    assert json.loads(sink.produced[-1][2] or b"") == {"orders": {"shipped": 2},
                                                       "firing_alerts": 0}


def test_after_a_rebalance_the_stored_census_is_read_not_recounted(tables: Any) -> None:
    orders, timers = tables
    put(orders, 0, b"o-1", order("picked"))
    store = CensusStore(timers, TableWriter(timers, RecordingSink()),  # type: ignore[arg-type]
                        orders)
    event = PartitionEvent(0)
    assert store.peek(0) is None  # nothing stored, nothing counted here yet
    tally.count_status(store.of(0, event), {}, "packed")  # type: ignore[arg-type]
    store.save(0, event)  # type: ignore[arg-type]
    store.forget()
    # A recount would say {"picked": 1}; the stored census (what the owner counted) wins.
    expected = {"orders": {"picked": 1, "packed": 1}, "firing_alerts": 0}
    assert store.peek(0) == expected
    assert store.of(0, event) == expected  # type: ignore[arg-type]
    assert store.peek(1) is None
