"""The latest record per key of a derived topic, in memory, with bounded retention.

Pure (no broker): the tailing loop in ``streams/projections.py`` feeds records in offset order
and the query API reads ``values()``. Records are *live* (an alert firing, a mismatch open)
or *done* (resolved). Live ones are all kept — they are what on-call and finance act on, and
the stream resolves them eventually. Done ones are kept for a window of stream time and at
most ``max_done`` of them, oldest dropped first, so a worker's memory does not grow with the
topic's history.

Stream time here is the newest record time seen (``time_of``), not the wall clock, so a
replay or a catch-up keeps the same records as live reading would.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Retention:
    """How long (stream time) and how many done records are kept per store."""

    window_ms: int = 24 * 3_600_000
    max_done: int = 10_000


@dataclass(frozen=True)
class Shape:
    """How to read a record kind: its key, whether it is live, when it happened."""

    key: Callable[[Mapping[str, Any]], str]
    is_live: Callable[[Mapping[str, Any]], bool]
    time_of: Callable[[Mapping[str, Any]], int]  # when it was resolved (done) or seen (live)


ALERT = Shape(key=lambda r: r["fingerprint"], is_live=lambda r: r["state"] == "firing",
              time_of=lambda r: r["ends_at"] if r.get("ends_at") is not None
              else r["starts_at"])
MISMATCH = Shape(key=lambda r: r["mismatch_id"], is_live=lambda r: r["status"] == "open",
                 time_of=lambda r: r["resolved_at"] if r.get("resolved_at") is not None
                 else r["detected_at"])


class LatestRecords:
    """Latest record per key; every live one, the done ones within ``retention``."""

    def __init__(self, shape: Shape, retention: Retention) -> None:
        self.shape = shape
        self.retention = retention
        self.clock: int | None = None  # newest record time seen
        self._live: dict[str, Record] = {}
        self._done: dict[str, tuple[int, Record]] = {}  # key -> (sequence number, record)
        # (time, sequence, key), oldest first; entries of overwritten keys are skipped lazily
        self._done_by_age: list[tuple[int, int, str]] = []
        self._sequence = 0

    def put(self, record: Record) -> None:
        """The newest record of its key (records of one key arrive in offset order)."""
        shape = self.shape
        key, at = shape.key(record), shape.time_of(record)
        self._live.pop(key, None)
        self._done.pop(key, None)
        if self.clock is None or at > self.clock:
            self.clock = at
        if shape.is_live(record):
            self._live[key] = record
        elif at >= self._horizon():
            self._sequence += 1
            self._done[key] = (self._sequence, record)
            heapq.heappush(self._done_by_age, (at, self._sequence, key))
        self._evict()

    def values(self) -> Iterator[Record]:
        yield from self._live.values()
        for _, record in self._done.values():
            yield record

    def get(self, key: str) -> Record | None:
        found = self._live.get(key)
        if found is None and key in self._done:
            found = self._done[key][1]
        return found

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def done_count(self) -> int:
        return len(self._done)

    def __len__(self) -> int:
        return len(self._live) + len(self._done)

    def _horizon(self) -> int:
        return (self.clock or 0) - self.retention.window_ms

    def _evict(self) -> None:
        horizon, heap = self._horizon(), self._done_by_age
        while heap:
            at, sequence, key = heap[0]
            current = self._done.get(key)
            if current is None or current[0] != sequence:  # overwritten since: stale entry
                heapq.heappop(heap)
            elif at < horizon or len(self._done) > self.retention.max_done:
                heapq.heappop(heap)
                del self._done[key]
            else:
                break
        if len(heap) > 2 * len(self._done) + 1024:  # many stale entries: rebuild
            self._done_by_age = [(self.shape.time_of(r), seq, k)
                                 for k, (seq, r) in self._done.items()]
            heapq.heapify(self._done_by_age)


class CatchUp:
    """Whether a reader has reached the end offsets its partitions had when it started."""

    def __init__(self, ends: Mapping[tuple[str, int], int]) -> None:
        # Empty partitions are reached already.
        self._left = {tp: end for tp, end in ends.items() if end > 0}
        self.total = len(ends)

    def reached(self, tp: tuple[str, int], position: int) -> None:
        """``position`` is the next offset the reader will read from ``tp``."""
        end = self._left.get(tp)
        if end is not None and position >= end:
            del self._left[tp]

    @property
    def done(self) -> bool:
        return not self._left

    @property
    def waiting_for(self) -> list[tuple[str, int]]:
        return sorted(self._left)
