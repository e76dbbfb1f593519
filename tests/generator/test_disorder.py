"""The stream arrives the way real feeds do: out of order, late, some events twice."""

from __future__ import annotations

from collections import defaultdict

from streams.generator import Generated, GeneratorConfig, generate


def test_emission_is_in_arrival_order(run: Generated) -> None:
    arrivals = [ev.arrival for ev in run.events]
    assert arrivals == sorted(arrivals)


def test_duplicates_share_event_id_and_bytes(run: Generated) -> None:
    originals = {ev.event_id: ev for ev in run.events if not ev.is_duplicate and not ev.is_bad}
    dups = [ev for ev in run.events if ev.is_duplicate]
    assert len(dups) > 5
    for dup in dups:
        original = originals[dup.event_id]
        assert dup.value == original.value
        assert dup.value is not original.value  # a copy: mutating one cannot touch the other
        assert (dup.topic, dup.key) == (original.topic, original.key)
        assert dup.arrival > original.arrival
    assert run.truth.counts["duplicates"] == len(dups)


def test_events_arrive_out_of_event_time_order_within_orders(run: Generated) -> None:
    by_key: dict[str | None, list[int]] = defaultdict(list)
    for ev in run.events:
        if ev.value is not None and not ev.is_duplicate and not ev.is_bad:
            by_key[ev.key].append(ev.value["event_time"])
    disordered = [k for k, times in by_key.items() if times != sorted(times)]
    assert len(disordered) > 20
    assert run.truth.counts["out_of_order"] > 0
    assert run.truth.counts["late"] > 0


def test_some_shipments_arrive_before_their_order(run: Generated) -> None:
    first_topic: dict[str, str] = {}
    for ev in run.events:
        if ev.key in run.truth.orders and not ev.is_bad and not ev.is_duplicate:
            first_topic.setdefault(ev.key, ev.topic)
    early = [k for k, topic in first_topic.items() if topic == "shipments"]
    assert len(early) >= 5


def test_noise_can_be_switched_off() -> None:
    g = generate(GeneratorConfig(orders=100, seed=4, duplicate_rate=0, late_rate=0,
                                 order_feed_lag_rate=0, bad_records=0))
    assert not any(ev.is_duplicate or ev.is_bad for ev in g.events)
    assert g.truth.dead_letters["count"] == 0
    assert g.truth.counts["valid_events"] == len(g.events)


def test_truth_counts_orders_seen_first_via_other_topics(run: Generated) -> None:
    first: dict[str, str] = {}
    for ev in run.events:
        if ev.key in run.truth.orders and not ev.is_bad and not ev.is_duplicate:
            first.setdefault(ev.key, ev.topic)
    expected = sum(1 for topic in first.values() if topic != "orders")
    assert run.truth.counts["orders_first_seen_via_other_topic"] == expected > 0
