"""Batch-aware table access for Faust agents that consume with `stream.take_events()`.

Faust ties table reads and writes to the "current event" (it picks the RocksDB partition and
the changelog partition from it), and `take()` with a table write raises "Cannot modify table
key from outside of stream iteration" in faust-streaming 0.15.3. `KeyedBatch` sets the current
event explicitly: each key is read once per batch in the context of its first event and written
once, in the context of its last event — one RocksDB put and one changelog record per key per
batch instead of one per event.

`TableWriter` writes the changelog record through the worker's librdkafka `OutputSink` instead
of Faust's producer buffer, which sends (and awaits) one message at a time and stalls the
stream with "producer buffer full" under load. The guarantees stay Faust's: the sink is flushed
before offsets are committed (`OffsetGuard`), and the acknowledged changelog offsets are
checkpointed into the store as Faust does, so a restart recovers only what it lacks. With
`after_outputs`, a changelog record goes out only once the outputs produced before it are
acknowledged (see streams/sink.py for the crash it prevents under at-least-once).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Generic, TypeVar

from faust.streams import _current_event
from faust.types import TP, EventT, TableT

from streams.sink import OutputSink
from streams.state_json import json_dumps, json_loads

S = TypeVar("S")

_DELETED = object()
NOT_PENDING = object()  # TableWriter.unacked_value: no write of the key awaits its ack


def enter_event(event: EventT) -> None:
    """Make `event` Faust's current event (what a stream does before yielding it)."""
    _current_event.set(weakref.ref(event))


class TableWriter:
    """Write table keys to their partition's RocksDB store and changelog (via the sink).

    With `after_outputs` (at-least-once), a write is kept in memory (`unacked`, which reads
    consult first) and reaches RocksDB only once Kafka acknowledged its changelog record, and
    that record goes out only after the outputs produced before it. So the local store is
    always a prefix of the changelog, and the changelog of what went out: a worker killed
    with -9 restarts on its RocksDB (plus the changelog's tail) without a record that claims
    a state or an alert its successor will never see. Without it (exactly-once, whose local
    store is only trusted after a clean stop) RocksDB is written at once.
    """

    def __init__(self, table: TableT, sink: OutputSink, *,
                 headers_for: Callable[[int], list[tuple[str, bytes]]] | None = None,
                 after_outputs: bool = False) -> None:
        self.table = table
        self.sink = sink
        self.topic = table.changelog_topic.get_topic_name()
        self.headers_for = headers_for  # partition -> headers of its changelog records
        self.after_outputs = after_outputs
        # partition -> key -> (write number, value or None): the newest write of each key
        # whose changelog record is not acknowledged yet.
        self.unacked: dict[int, dict[bytes, tuple[int, bytes | None]]] = {}
        self._writes = 0

    def put(self, key: bytes, value: bytes | None, event: EventT) -> None:
        """Set (or, with None, delete) `key` in the partition of `event`."""
        partition = event.message.partition
        headers = None if self.headers_for is None else self.headers_for(partition)
        if self.after_outputs:
            self._writes += 1
            self.unacked.setdefault(partition, {})[key] = (self._writes, value)
            self.sink.produce_after_outputs(self.topic, key, value, headers, partition, partial(
                self._store, partition, key, value, self._writes))
            return
        self._store(partition, key, value)
        self.sink.produce(self.topic, key, value, headers, partition)

    def unacked_value(self, partition: int, key: bytes) -> bytes | object | None:
        """The newest unacknowledged write of `key` (None: a delete), or `NOT_PENDING`."""
        pending = self.unacked.get(partition)
        if not pending:
            return NOT_PENDING
        entry = pending.get(key)
        return NOT_PENDING if entry is None else entry[1]

    def _store(self, partition: int, key: bytes, value: bytes | None,
               write: int | None = None) -> None:
        # Straight to the partition's database: Faust's store would find it from the current
        # event, and its delete looks for the key in every partition's database first.
        db = self.table.data._db_for_partition(partition)
        if value is None:
            db.delete(key)
        else:
            db.put(key, value)
        if write is not None:  # acknowledged: RocksDB has it now, unless a newer write waits
            pending = self.unacked[partition]
            if pending[key][0] == write:
                del pending[key]

    def checkpoint(self) -> None:
        """Record acknowledged changelog offsets in the store, as Faust does after a send."""
        store = self.table.data
        for (topic, partition), offset in self.sink.checkpointable.items():
            if topic == self.topic:
                store.set_persisted_offset(TP(topic, partition), offset)


class KeyedBatch(Generic[S]):
    """The working set of one batch over one table: key -> (state, last event)."""

    def __init__(self, table: TableT, writer: TableWriter | None = None, *,
                 loads: Callable[[bytes], S] = json_loads,
                 dumps: Callable[[S], bytes] = json_dumps) -> None:
        self.table = table
        self.writer = writer
        self.loads = loads
        self.dumps = dumps
        self._pending: dict[bytes, tuple[Any, EventT]] = {}

    def get(self, key: bytes, event: EventT) -> S | None:
        """The key's state as of this point of the batch (None when absent)."""
        pending = self._pending.get(key)
        if pending is not None:
            value = pending[0]
            return None if value is _DELETED else value
        partition = event.message.partition
        if self.writer is not None and self.writer.unacked:
            unacked = self.writer.unacked_value(partition, key)
            if unacked is not NOT_PENDING:
                return None if unacked is None else self.loads(unacked)  # type: ignore[arg-type]
        # The partition's database directly (what Faust's table.get ends in, minus its layers).
        raw = self.table.data._db_for_partition(partition).get(key)
        return None if raw is None else self.loads(raw)

    def put(self, key: bytes, state: S, event: EventT) -> None:
        self._pending[key] = (state, event)

    def delete(self, key: bytes, event: EventT) -> None:
        self._pending[key] = (_DELETED, event)

    def touched(self) -> Iterator[tuple[bytes, S]]:
        for key, (value, _) in self._pending.items():
            if value is not _DELETED:
                yield key, value

    def flush(self) -> int:
        """Write every touched key once (a changelog record each; a tombstone for deletes)."""
        table, writer = self.table, self.writer
        for key, (value, event) in self._pending.items():
            if writer is not None:
                writer.put(key, None if value is _DELETED else self.dumps(value), event)
                continue
            enter_event(event)  # Faust's own path: the table sends the changelog record
            if value is _DELETED:
                if key in table:
                    del table[key]
            else:
                table[key] = self.dumps(value)
        written = len(self._pending)
        self._pending.clear()
        return written
