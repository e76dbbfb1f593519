"""Batch-aware table access for Faust agents that consume with `stream.take_events()`.

Faust ties table reads and writes to the "current event" (it picks the RocksDB partition and
the changelog partition from it), and `take()` with a table write raises "Cannot modify table
key from outside of stream iteration" in faust-streaming 0.15.3. `KeyedBatch` sets the current
event explicitly: each key is read once per batch in the context of its first event and written
once, in the context of its last event — one RocksDB put and one changelog record per key per
batch instead of one per event.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from faust.streams import _current_event
from faust.types import EventT, TableT

S = TypeVar("S")

_DELETED = object()


def enter_event(event: EventT) -> None:
    """Make `event` Faust's current event (what a stream does before yielding it)."""
    _current_event.set(weakref.ref(event))


def json_dumps(state: Any) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


def json_loads(raw: bytes) -> Any:
    return json.loads(raw)


class KeyedBatch(Generic[S]):
    """The working set of one batch over one table: key -> (state, last event)."""

    def __init__(self, table: TableT, *, loads: Callable[[bytes], S] = json_loads,
                 dumps: Callable[[S], bytes] = json_dumps) -> None:
        self.table = table
        self.loads = loads
        self.dumps = dumps
        self._pending: dict[bytes, tuple[Any, EventT]] = {}

    def get(self, key: bytes, event: EventT) -> S | None:
        """The key's state as of this point of the batch (None when absent)."""
        pending = self._pending.get(key)
        if pending is not None:
            value = pending[0]
            return None if value is _DELETED else value
        enter_event(event)
        raw = self.table.get(key)
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
        table = self.table
        for key, (value, event) in self._pending.items():
            enter_event(event)
            if value is _DELETED:
                if key in table:
                    del table[key]
            else:
                table[key] = self.dumps(value)
        written = len(self._pending)
        self._pending.clear()
        return written
