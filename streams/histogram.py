"""A fixed-bucket histogram of plain ints, cheap enough to observe on the live path.

`observe` is one C-level bisect and three integer adds into a preallocated list: no objects per
observation beyond the int itself. The Prometheus collector turns it into cumulative buckets at
scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS

# Event time -> emitted: tens of milliseconds live, seconds under load, hours or days for a
# backfill or a feed that arrives late (the top buckets tell those apart from a slow worker).
LATENCY_BUCKETS_MS: tuple[int, ...] = (
    10, 25, 50, 100, 250, 500, SECOND_MS, 2 * SECOND_MS, 5 * SECOND_MS, 10 * SECOND_MS,
    30 * SECOND_MS, MINUTE_MS, 5 * MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS,
    24 * HOUR_MS, 7 * 24 * HOUR_MS,
)


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[int]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bucket bounds must be strictly increasing")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0
        self.count = 0

    def observe(self, value: int) -> None:
        """Count `value` in the first bucket whose bound is >= it (Prometheus `le`)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[int | None, int]]:
        """(upper bound or None for +Inf, observations at or below it)."""
        out: list[tuple[int | None, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, None), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
