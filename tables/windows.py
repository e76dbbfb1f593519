"""Window math for the analysts' metrics: event-time windows, grace, aggregates, histograms.

Pure and deterministic (stdlib only): the metrics agent keeps one aggregate per
`name|group|size|start` key in a table and calls these functions; tests recompute the same
windows from the same observations without a broker.

A window [start, end) accepts observations until stream time reaches `end + grace` (its close
time); then its final value is emitted once and the window is forgotten. An observation for a
window that has already closed is *late*: it is not added anywhere (the window's result is
out), but counted in the `late_events` metric, in the window of the same size that holds the
stream time at arrival, so nothing is dropped silently.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
WINDOW_SIZES_MS = (MINUTE_MS, HOUR_MS)
LATE_EVENTS = "late_events"

Kind = Literal["counter", "ratio", "latency"]


def _geometric_bounds(ratio_percent: int, limit: int) -> tuple[int, ...]:
    bounds, bound = [], 1
    while bound < limit:
        bounds.append(bound)
        bound = max(bound + 1, -(-bound * ratio_percent // 100))  # integer ceil: no float
    return (*bounds, limit)


# Latency histogram bucket upper bounds (ms), each at most 5% (or 2 ms) above the last, from 1 ms
# to about 3 years (~470 buckets, stored sparsely). Fixed bounds make histograms of different
# windows mergeable by adding counts; 5% steps keep a percentile within 5% of the truth, which
# matters next to SLA thresholds (a p95 of 30 h must not read as 50 h against a 36 h limit).
BUCKET_BOUNDS_MS: tuple[int, ...] = _geometric_bounds(105, 10**11)


# --- windows -------------------------------------------------------------------------------

def tumbling_window(event_ms: int, size_ms: int) -> tuple[int, int]:
    """The one [start, end) window of `size_ms` that holds `event_ms` (epoch-aligned)."""
    start = event_ms - event_ms % size_ms
    return start, start + size_ms


def hopping_windows(event_ms: int, size_ms: int, advance_ms: int) -> list[tuple[int, int]]:
    """Every [start, end) window of `size_ms`, starting each `advance_ms`, that holds
    `event_ms`, oldest first."""
    if advance_ms <= 0 or advance_ms > size_ms:
        raise ValueError(f"advance must be in (0, size], got {advance_ms} for size {size_ms}")
    last_start = event_ms - event_ms % advance_ms
    windows = []
    start = last_start - ((size_ms - 1) // advance_ms) * advance_ms
    while start <= last_start:
        if start + size_ms > event_ms:
            windows.append((start, start + size_ms))
        start += advance_ms
    return windows


def close_time(window_end: int, grace_ms: int) -> int:
    """Stream time at which the window's result is final."""
    return window_end + grace_ms


def is_late(window_end: int, grace_ms: int, now_ms: int | None) -> bool:
    """True when the window has already closed at stream time `now_ms`."""
    return now_ms is not None and now_ms >= close_time(window_end, grace_ms)


# --- keys ----------------------------------------------------------------------------------

def group_key(labels: Mapping[str, str]) -> str:
    """Stable key of a label set: `k=v` pairs sorted by label, comma-separated."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def window_key(name: str, group: str, size_ms: int, start_ms: int) -> bytes:
    # Fixed-width times keep a window's keys sorted by start within a (name, group).
    return f"{name}|{group}|{size_ms:013d}|{start_ms:013d}".encode()


def parse_window_key(key: bytes) -> tuple[str, str, int, int]:
    name, rest = key.decode().split("|", 1)
    group, size, start = rest.rsplit("|", 2)
    return name, group, int(size), int(start)


# --- histogram -----------------------------------------------------------------------------

def bucket_of(value_ms: int) -> int:
    """Index of the first bucket whose upper bound is >= value (the last catches the rest)."""
    return min(bisect.bisect_left(BUCKET_BOUNDS_MS, max(value_ms, 0)), len(BUCKET_BOUNDS_MS) - 1)


def histogram_add(histogram: dict[str, int], value_ms: int) -> None:
    # String indices: the histogram is stored as JSON, whose object keys are strings.
    index = str(bucket_of(value_ms))
    histogram[index] = histogram.get(index, 0) + 1


def histogram_merge(into: dict[str, int], other: Mapping[str, int]) -> dict[str, int]:
    for index, count in other.items():
        into[index] = into.get(index, 0) + count
    return into


def percentile(histogram: Mapping[str, int], q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile (nearest rank): an estimate that
    never understates, within one bucket step; None for an empty histogram."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, -(-round(q * 1000) * total // 1000))  # ceil(q * total) without float error
    seen = 0
    for index in sorted(histogram, key=int):
        seen += histogram[index]
        if seen >= rank:
            return float(BUCKET_BOUNDS_MS[int(index)])
    return float(BUCKET_BOUNDS_MS[-1])  # unreachable: seen reaches total


# --- aggregates ----------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    kind: Kind
    unit: str


@dataclass(frozen=True)
class Observation:
    """One contribution to a metric: `count` events adding `value` (units, 0/1, or ms)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    event_ms: int
    count: int
    value: int

    @property
    def group(self) -> str:
        return group_key(dict(self.labels))


def new_aggregate(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"labels": dict(labels), "count": 0, "sum": 0, "hist": {}, "late": 0}


def add_observation(aggregate: dict[str, Any], spec: MetricSpec, count: int,
                    value: int) -> None:
    aggregate["count"] += count
    aggregate["sum"] += value
    if spec.kind == "latency":
        histogram_add(aggregate["hist"], value)


def merge_aggregates(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    into["count"] += other["count"]
    into["sum"] += other["sum"]
    into["late"] += other["late"]
    histogram_merge(into["hist"], other["hist"])
    return into


def to_windowed_metric(name: str, spec: MetricSpec, size_ms: int, start_ms: int,
                       aggregate: Mapping[str, Any]) -> dict[str, Any]:
    """The WindowedMetric record of a closed window."""
    count, total = aggregate["count"], aggregate["sum"]
    # A counter's value is its sum; a ratio's (flagged / events) and a latency's (mean) divide.
    value = float(total) if spec.kind == "counter" else (total / count if count else 0.0)
    hist = aggregate["hist"] if spec.kind == "latency" else {}
    labels = dict(aggregate["labels"])
    return {"name": name, "group_key": group_key(labels), "labels": labels,
            "window_start": start_ms, "window_end": start_ms + size_ms,
            "count": count, "sum": total, "value": value,
            "p50": percentile(hist, 0.50), "p95": percentile(hist, 0.95),
            "p99": percentile(hist, 0.99), "late_events": aggregate["late"],
            "unit": spec.unit}


# --- the reference fold (tests, and the agent's per-observation step) -----------------------

@dataclass
class Placement:
    key: bytes
    size_ms: int
    start_ms: int
    late: bool


def place(observation: Observation, now_ms: int | None, grace_ms: int,
          sizes: Iterable[int] = WINDOW_SIZES_MS) -> list[Placement]:
    """The tumbling windows of every size this observation falls into, late or not."""
    out = []
    for size in sizes:
        start, end = tumbling_window(observation.event_ms, size)
        out.append(Placement(window_key(observation.name, observation.group, size, start),
                             size, start, is_late(end, grace_ms, now_ms)))
    return out


def late_observation(observation: Observation, now_ms: int) -> Observation:
    """What a late observation becomes: one `late_events` event at the arrival's stream time,
    labelled by the metric it was meant for."""
    return Observation(LATE_EVENTS, (("metric", observation.name),), now_ms, 1, 1)


def add_late(aggregate: dict[str, Any]) -> None:
    """Count one late arrival in a `late_events` window (its value and its late_events)."""
    add_observation(aggregate, LATE_SPEC, 1, 1)
    aggregate["late"] += 1


LATE_SPEC = MetricSpec("counter", "events")
