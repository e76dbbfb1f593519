"""The cluster overview: each worker's local part, and how the parts add up.

A worker owns some partitions; its *local part* says what it knows first-hand: the census
(`tables.census`) of each partition it owns, its consumption rate and lag. The *overview*
merges the parts of every worker, taking each partition's census once, from the worker the
group's assignment names as its owner, so a partition is never counted twice nor silently
dropped: partitions nobody reported are listed as missing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from streams.app import Pipeline
from streams.topics import ORDER_STATE_TABLE, changelog_topic
from tables import census as tally
from tables.census import Census


class RateMeter:
    """Events per second over a sliding window of (time, running total) samples."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now_s: float, total: int) -> None:
        samples = self._samples
        samples.append((now_s, total))
        while len(samples) > 2 and now_s - samples[1][0] >= self.window_s:
            samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 <= t0 or n1 < n0:  # counters restarted: no rate until the window refills
            return 0.0
        return (n1 - n0) / (t1 - t0)


def active_partitions(pipeline: Pipeline) -> list[int]:
    """Partitions of the order table this worker is the active owner of."""
    topic = changelog_topic(pipeline.settings.app_id, ORDER_STATE_TABLE)
    return sorted(tp.partition for tp in pipeline.app.assignor.assigned_actives()
                  if tp.topic == topic)


def local_censuses(pipeline: Pipeline) -> dict[int, Census | None]:
    """The census of each partition this worker owns (None: not known here yet)."""
    store = pipeline.services.get("census")
    if store is None:
        return {}
    return {p: store.peek(p) for p in active_partitions(pipeline)}


def consumed_total(pipeline: Pipeline) -> int:
    counters = pipeline.services.get("counters", {})
    return sum(counters.get(topic, 0) for topic in pipeline.names.inputs)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def merge_parts(parts: Iterable[Mapping[str, Any]], owners: Mapping[int, str],
                partitions: int) -> dict[str, Any]:
    """Add up workers' local parts (`owners`: partition -> URL of its owner, per the group's
    assignment). Each partition's census is taken once: from its owner's part, else from
    any part that reports it; a partition found in no part is listed as missing."""
    parts = list(parts)
    by_url = {part["url"]: part for part in parts}
    censuses: list[Census] = []
    missing: list[int] = []
    for p in range(partitions):
        census = _census_of(by_url.get(owners.get(p, "")), p)
        if census is None:
            census = next((c for part in parts if (c := _census_of(part, p)) is not None),
                          None)
        if census is None:
            missing.append(p)
        else:
            censuses.append(census)
    merged = tally.merge(censuses)
    return {
        "orders_by_status": dict(tally.statuses(merged)),
        "orders_total": tally.orders_total(merged),
        "firing_alerts": merged["firing_alerts"],
        "events_per_second": round(sum(part.get("events_per_second", 0.0) for part in parts), 1),
        "consumer_lag": sum(part.get("consumer_lag", 0) for part in parts),
        "partitions_missing": missing,
        "complete": not missing,
    }


def _census_of(part: Mapping[str, Any] | None, partition: int) -> Census | None:
    if part is None:
        return None
    census = part.get("census", {}).get(str(partition))
    return None if census is None else tally.restore(census)
