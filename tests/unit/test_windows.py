"""Window math: ranges, grace and lateness, histogram percentiles and merge, expiry."""

from __future__ import annotations

import random

import pytest

from tables import metrics_rules
from tables.windows import (
    BUCKET_BOUNDS_MS,
    HOUR_MS,
    LATE_EVENTS,
    MINUTE_MS,
    MetricSpec,
    Observation,
    add_late,
    add_observation,
    bucket_of,
    close_time,
    group_key,
    histogram_add,
    histogram_merge,
    hopping_windows,
    is_late,
    late_observation,
    merge_aggregates,
    new_aggregate,
    parse_window_key,
    percentile,
    place,
    to_windowed_metric,
    tumbling_window,
    window_key,
)

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z, a whole hour


def test_tumbling_windows_are_aligned_and_half_open() -> None:
    assert tumbling_window(T0, MINUTE_MS) == (T0, T0 + MINUTE_MS)
    assert tumbling_window(T0 + MINUTE_MS - 1, MINUTE_MS) == (T0, T0 + MINUTE_MS)
    assert tumbling_window(T0 + MINUTE_MS, MINUTE_MS) == (T0 + MINUTE_MS, T0 + 2 * MINUTE_MS)
    assert tumbling_window(T0 + 59 * MINUTE_MS, HOUR_MS) == (T0, T0 + HOUR_MS)


def test_hopping_windows_cover_the_event_oldest_first() -> None:
    windows = hopping_windows(T0 + 7 * MINUTE_MS, 10 * MINUTE_MS, 5 * MINUTE_MS)
    assert windows == [(T0, T0 + 10 * MINUTE_MS), (T0 + 5 * MINUTE_MS, T0 + 15 * MINUTE_MS)]
    assert hopping_windows(T0, MINUTE_MS, MINUTE_MS) == [tumbling_window(T0, MINUTE_MS)]
    for event in (T0 + 1, T0 + 4 * MINUTE_MS + 59_999):
        assert all(start <= event < end
                   for start, end in hopping_windows(event, 10 * MINUTE_MS, MINUTE_MS))
        assert len(hopping_windows(event, 10 * MINUTE_MS, MINUTE_MS)) == 10
    with pytest.raises(ValueError):
        hopping_windows(T0, MINUTE_MS, 2 * MINUTE_MS)


def test_a_window_closes_at_end_plus_grace() -> None:
    end = T0 + MINUTE_MS
    assert close_time(end, 30_000) == end + 30_000
    assert not is_late(end, 30_000, None)
    assert not is_late(end, 30_000, end + 29_999)  # within grace: still updates its window
    assert is_late(end, 30_000, end + 30_000)


def test_late_beyond_grace_is_counted_in_the_arrival_window() -> None:
    grace = 30_000
    obs = Observation("orders_accepted", (("channel", "web"),), T0 + 10, 1, 1)
    now = T0 + HOUR_MS + grace  # the minute and the hour of the event have both closed
    placements = place(obs, now, grace)
    assert [p.late for p in placements] == [True, True]
    late = late_observation(obs, now)
    assert late.name == LATE_EVENTS and late.group == "metric=orders_accepted"
    assert not any(p.late for p in place(late, now, grace))
    aggregate = new_aggregate({"metric": "orders_accepted"})
    add_late(aggregate)
    spec = metrics_rules.METRICS[LATE_EVENTS]
    record = to_windowed_metric(LATE_EVENTS, spec, MINUTE_MS, T0, aggregate)
    assert (record["count"], record["value"], record["late_events"]) == (1, 1.0, 1)
    within = place(obs, T0 + MINUTE_MS + grace - 1, grace)
    assert [p.late for p in within] == [False, False]


def test_window_keys_round_trip_and_sort_by_start() -> None:
    key = window_key("order_to_ship_ms", group_key({"warehouse": "W1", "channel": "web"}),
                     MINUTE_MS, T0)
    assert parse_window_key(key) == ("order_to_ship_ms", "channel=web,warehouse=W1",
                                      MINUTE_MS, T0)
    later = window_key("order_to_ship_ms", "channel=web,warehouse=W1", MINUTE_MS, T0 + 10**12)
    assert key < later


def test_percentiles_are_the_bucket_upper_bounds_by_nearest_rank() -> None:
    histogram: dict[str, int] = {}
    assert percentile(histogram, 0.5) is None
    for value in range(1, 101):  # 1..100 ms
        histogram_add(histogram, value)
    assert percentile(histogram, 0.50) == 50.0  # exact while buckets are 1 ms wide
    p95, p99 = percentile(histogram, 0.95), percentile(histogram, 0.99)
    assert p95 is not None and p99 is not None
    assert 95 <= p95 <= 95 * 1.05 + 1 and 99 <= p99 <= 99 * 1.05 + 1
    assert bucket_of(0) == 0 and bucket_of(10**15) == len(BUCKET_BOUNDS_MS) - 1
    for value in (1, 3, 999, 123_456_789, 129_600_000):
        bound = BUCKET_BOUNDS_MS[bucket_of(value)]
        assert value <= bound <= value * 1.05 + 1  # never understates, at most 5% over


def test_histograms_merge_to_the_histogram_of_all_values() -> None:
    rng = random.Random(3)
    values = [rng.randrange(1, 10 * HOUR_MS) for _ in range(500)]
    left: dict[str, int] = {}
    right: dict[str, int] = {}
    whole: dict[str, int] = {}
    for i, value in enumerate(values):
        histogram_add(left if i % 3 else right, value)
        histogram_add(whole, value)
    merged = histogram_merge(dict(left), right)
    assert merged == whole
    for q in (0.5, 0.95, 0.99):
        assert percentile(merged, q) == percentile(whole, q)


def test_aggregates_merge_and_render_each_kind() -> None:
    latency = MetricSpec("latency", "ms")
    a, b = new_aggregate({}), new_aggregate({})
    for value in (10, 20):
        add_observation(a, latency, 1, value)
    add_observation(b, latency, 1, 30)
    merged = merge_aggregates(a, b)
    record = to_windowed_metric("order_to_ship_ms", latency, HOUR_MS, T0, merged)
    assert (record["count"], record["sum"], record["value"]) == (3, 60, 20.0)
    assert record["p50"] == 20.0 and record["window_end"] == T0 + HOUR_MS
    ratio = new_aggregate({"warehouse": "W1"})
    add_observation(ratio, MetricSpec("ratio", "events"), 4, 0)
    add_observation(ratio, MetricSpec("ratio", "events"), 0, 1)
    rate = to_windowed_metric("shipment_exception_rate", MetricSpec("ratio", "events"),
                              HOUR_MS, T0, ratio)
    assert rate["value"] == 0.25 and rate["p95"] is None and rate["group_key"] == "warehouse=W1"


def test_expired_windows_leave_the_working_set() -> None:
    """The agent's fold: windows are dropped as they close, so the state stays bounded."""
    grace = 5_000
    open_windows: dict[bytes, int] = {}  # key -> close time
    emitted: list[bytes] = []
    biggest = 0
    for i in range(10 * 60):  # ten hours, one event a minute
        now = T0 + i * MINUTE_MS
        for key, closes in sorted(open_windows.items(), key=lambda kv: kv[1]):
            if closes <= now:
                emitted.append(key)
                del open_windows[key]
        obs = Observation("orders_accepted", (), now, 1, 1)
        for placement in place(obs, now, grace):
            assert not placement.late
            open_windows[placement.key] = close_time(placement.start_ms + placement.size_ms,
                                                     grace)
        biggest = max(biggest, len(open_windows))
    assert biggest <= 4  # this minute and hour, and the previous ones while in grace
    # every window once, but the last two minutes and the last hour (still open or in grace)
    assert len(emitted) == len(set(emitted)) == 598 + 9


def _state(version: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "version": version, "channel": "web", "warehouses": [], "carriers": [], "lines": [],
        "shipment_count": 0, "open_exceptions": [], "updated_at": T0 + version,
        "accepted_at": None, "shipped_at": None, "delivered_at": None, "cancelled_at": None,
        "returned_at": None}
    base.update(fields)
    return base


def test_milestones_count_once_per_order_and_replays_count_nothing() -> None:
    counted = metrics_rules.new_counted()
    accepted = _state(1, accepted_at=T0)
    assert [o.name for o in metrics_rules.observe(counted, accepted)] == ["orders_accepted"]
    assert metrics_rules.observe(counted, accepted) == []  # duplicate version
    shipped = _state(2, accepted_at=T0, shipped_at=T0 + HOUR_MS, warehouses=["W1"],
                     carriers=["ups"], shipment_count=1,
                     lines=[{"shipped": 3}],
                     open_exceptions=[{"shipment_id": "s1", "since": T0 + 2 * HOUR_MS}])
    names = sorted(o.name for o in metrics_rules.observe(counted, shipped))
    assert names == ["order_to_ship_ms"] * 4 + ["shipment_exception_rate"] * 2 + [
        "units_shipped"]
    again = _state(3, **{k: v for k, v in shipped.items() if k != "version"})
    assert metrics_rules.observe(counted, again) == []  # new version, same milestones
    assert metrics_rules.observe(counted, _state(1, accepted_at=T0)) == []  # replayed old one


def test_counting_is_idempotent_even_without_the_stored_version() -> None:
    """The agent stores the per-order record only when something was counted, so a replay
    may meet a record whose version is older than the state: milestones still count once."""
    counted = metrics_rules.new_counted()
    shipped = _state(2, accepted_at=T0, shipped_at=T0 + HOUR_MS, warehouses=["W1"],
                     shipment_count=1, lines=[{"shipped": 3}],
                     open_exceptions=[{"shipment_id": "s1", "since": T0 + HOUR_MS}])
    assert metrics_rules.observe(counted, shipped)
    counted["v"] = -1
    assert metrics_rules.observe(counted, shipped) == []
    assert metrics_rules.observe(counted, _state(5, accepted_at=T0, lines=[{"shipped": 2}],
                                                 shipment_count=1)) == []
