"""Stream time and deadlines, driven only by event timestamps (never the wall clock).

`StreamClock` turns the event times an agent has seen into a watermark: the highest
event time minus the allowed lateness.  `Deadlines` is a wheel of string-keyed
deadlines that fire once the watermark reaches them.  Both are plain, JSON-able
state so an agent can keep them in a table and replay deterministically: the same
calls with the same times always give the same results.
"""

from __future__ import annotations

import heapq
from typing import Any

__all__ = ["AlignedClock", "Deadlines", "StreamClock"]


class StreamClock:
    """Watermark = highest event time seen minus `allowed_lateness_ms`; never goes backwards."""

    __slots__ = ("_allowed_lateness_ms", "_max_event_ms")

    def __init__(self, allowed_lateness_ms: int = 0) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {allowed_lateness_ms}")
        self._allowed_lateness_ms = int(allowed_lateness_ms)
        self._max_event_ms: int | None = None

    @property
    def allowed_lateness_ms(self) -> int:
        return self._allowed_lateness_ms

    @property
    def max_event_ms(self) -> int | None:
        """Highest event time observed so far (None before any event)."""
        return self._max_event_ms

    def observe(self, event_time_ms: int) -> None:
        # A late event never moves time back: only the maximum matters.
        if self._max_event_ms is None or event_time_ms > self._max_event_ms:
            self._max_event_ms = int(event_time_ms)

    def now(self) -> int | None:
        if self._max_event_ms is None:
            return None
        return self._max_event_ms - self._allowed_lateness_ms

    def snapshot(self) -> dict[str, Any]:
        return {
            "allowed_lateness_ms": self._allowed_lateness_ms,
            "max_event_ms": self._max_event_ms,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> StreamClock:
        clock = cls(int(snapshot.get("allowed_lateness_ms", 0)))
        max_event_ms = snapshot.get("max_event_ms")
        clock._max_event_ms = None if max_event_ms is None else int(max_event_ms)
        return clock

    def __repr__(self) -> str:
        return (
            f"StreamClock(allowed_lateness_ms={self._allowed_lateness_ms}, "
            f"max_event_ms={self._max_event_ms})"
        )


# Rebuild the heap once stale entries outnumber live ones by this much, so that
# schedule/cancel churn on long-lived ids cannot grow memory without bound.
_COMPACT_SLACK = 64


class Deadlines:
    """Deadlines keyed by string id; fire in (due, id) order once `now_ms >= due`.

    A min-heap with lazy deletion: re-scheduling or cancelling an id only bumps its
    generation in `_live`; heap entries whose generation is stale are skipped when
    they surface.  All operations are O(log n) amortised.
    """

    __slots__ = ("_generation", "_heap", "_live")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, int]] = []  # (due_ms, deadline_id, generation)
        self._live: dict[str, tuple[int, int, dict[str, Any]]] = {}  # id -> (due, gen, payload)
        self._generation = 0

    def schedule(self, deadline_id: str, due_ms: int, payload: dict[str, Any]) -> None:
        """Schedule `deadline_id` at `due_ms`, replacing any earlier schedule of that id."""
        self._generation += 1
        due = int(due_ms)
        self._live[deadline_id] = (due, self._generation, payload)
        heapq.heappush(self._heap, (due, deadline_id, self._generation))
        self._maybe_compact()

    def cancel(self, deadline_id: str) -> None:
        """Forget `deadline_id`; unknown ids are ignored."""
        if self._live.pop(deadline_id, None) is not None:
            self._maybe_compact()

    def pop_due(self, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return every deadline with `due <= now_ms`, in (due, id) order."""
        fired: list[tuple[str, dict[str, Any]]] = []
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now_ms:
            _due, deadline_id, generation = heapq.heappop(heap)
            entry = live.get(deadline_id)
            if entry is not None and entry[1] == generation:
                del live[deadline_id]
                fired.append((deadline_id, entry[2]))
        return fired

    def next_due(self) -> int | None:
        """Earliest live due time, or None when nothing is scheduled."""
        heap, live = self._heap, self._live
        while heap:
            due, deadline_id, generation = heap[0]
            entry = live.get(deadline_id)
            if entry is not None and entry[1] == generation:
                return due
            heapq.heappop(heap)  # stale: drop it now so the next call is O(1)
        return None

    def get(self, deadline_id: str) -> tuple[int, dict[str, Any]] | None:
        """(due_ms, payload) of a scheduled id, or None."""
        entry = self._live.get(deadline_id)
        return None if entry is None else (entry[0], entry[2])

    def __contains__(self, deadline_id: object) -> bool:
        return deadline_id in self._live

    def __len__(self) -> int:
        return len(self._live)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: live deadlines only, in firing order."""
        ordered = sorted(self._live.items(), key=lambda item: (item[1][0], item[0]))
        return {
            "deadlines": [
                {"id": deadline_id, "due_ms": due, "payload": payload}
                for deadline_id, (due, _generation, payload) in ordered
            ]
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Deadlines:
        wheel = cls()
        for item in snapshot.get("deadlines", ()):
            wheel.schedule(str(item["id"]), int(item["due_ms"]), dict(item["payload"]))
        return wheel

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._live) + _COMPACT_SLACK:
            self._heap = [(due, i, gen) for i, (due, gen, _payload) in self._live.items()]
            heapq.heapify(self._heap)

    def __repr__(self) -> str:
        return f"Deadlines({len(self._live)} scheduled, next_due={self.next_due()})"


class AlignedClock:
    """Stream time of a partition fed by several inputs (the four topics of one partition).

    Inputs are consumed at different speeds: during a catch-up the orders topic can be hours
    of event time ahead of the shipments topic. Taking the maximum over all inputs would fire
    deadlines ("not shipped by ship-by") before the shipments that meet them were read — a
    false page. So time is the slowest input's time, like Kafka Streams' timestamp-ordered
    processing and Flink's watermark alignment: an input that has not been read yet holds
    time back, and only an *idle* input (read to its end) is left out. With every input idle
    time is the newest event seen, minus the allowed lateness.
    """

    __slots__ = ("_allowed_lateness_ms", "_floor", "_max", "sources")

    def __init__(self, sources: tuple[str, ...] | list[str], allowed_lateness_ms: int = 0) -> None:
        self.sources = tuple(sources)
        self._allowed_lateness_ms = int(allowed_lateness_ms)
        self._max: dict[str, int] = {}
        self._floor: int | None = None  # time never moves back (an idle input waking up)

    def observe(self, source: str, event_time_ms: int) -> None:
        current = self._max.get(source)
        if current is None or event_time_ms > current:
            self._max[source] = int(event_time_ms)

    @property
    def max_event_ms(self) -> int | None:
        return max(self._max.values(), default=None)

    def now(self, idle: frozenset[str] | set[str] = frozenset()) -> int | None:
        """Stream time given which inputs are idle; None while an active input is unread."""
        if not self._max:
            return None
        times = []
        for source in self.sources:
            if source in idle:
                continue
            seen = self._max.get(source)
            if seen is None:
                return None  # an input with data still to read: time cannot move yet
            times.append(seen)
        now = (min(times) if times else max(self._max.values())) - self._allowed_lateness_ms
        if self._floor is not None and now < self._floor:
            return self._floor
        self._floor = now
        return now

    def snapshot(self) -> dict[str, Any]:
        return {"allowed_lateness_ms": self._allowed_lateness_ms, "max": dict(self._max),
                "floor": self._floor}

    @classmethod
    def restore(cls, sources: tuple[str, ...] | list[str],
                snapshot: dict[str, Any]) -> AlignedClock:
        clock = cls(sources, int(snapshot.get("allowed_lateness_ms", 0)))
        clock._max = {k: int(v) for k, v in snapshot.get("max", {}).items()}
        floor = snapshot.get("floor")
        clock._floor = None if floor is None else int(floor)
        return clock
