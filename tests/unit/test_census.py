"""The per-partition census: orders by fulfillment status and firing alerts, counted
incrementally by the pipeline, always equal to a recount of the records, whatever the arrival
order, batching, duplicates and expiries."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.generator import thresholds
from streams.generator.build import Generated, generate
from streams.generator.config import GeneratorConfig
from tables import census as tally
from tables.order_pipeline import PipelineConfig, fulfillment_state
from tables.order_runner import OrderRunner
from tables.schema_files import INPUT_TOPIC_KINDS

HOUR = 3_600_000
InputEvent = tuple[str, str, dict[str, Any]]


def record(status: str | None = None, firing: int = 0, pending: int = 0) -> dict[str, Any]:
    alerts = ([{"status": "firing"}] * firing) + ([{"status": "pending"}] * pending)
    out: dict[str, Any] = {"sla": {"alerts": alerts}}
    if status is not None:
        out[tally.COUNTED_STATUS] = status
    return out


# --- the arithmetic ---


def test_a_status_change_moves_one_order() -> None:
    census = tally.new_census()
    order = record()
    tally.count_status(census, order, "accepted")
    assert census["orders"] == {"accepted": 1} and order["cs"] == "accepted"
    tally.count_status(census, order, "accepted")  # a new version with the same status
    assert census["orders"] == {"accepted": 1}
    tally.count_status(census, order, "shipped")
    assert census["orders"] == {"shipped": 1}  # zero counts are dropped, not kept as 0


def test_without_a_census_the_record_still_remembers_its_status() -> None:
    order = record()
    tally.count_status(None, order, "picked")
    assert order["cs"] == "picked"
    assert tally.recount([order]) == {"orders": {"picked": 1}, "firing_alerts": 0}


def test_alerts_count_only_firing_ones() -> None:
    census = tally.new_census()
    assert tally.firing_alerts(record(firing=2, pending=3)) == 2
    tally.count_alerts(census, 0, 2)
    tally.count_alerts(census, 2, 1)
    tally.count_alerts(None, 0, 5)  # no census: nothing to count into
    assert census["firing_alerts"] == 1


def test_forget_takes_a_records_whole_share_out() -> None:
    records = [record("delivered", firing=1), record("shipped"), record(None, firing=1)]
    census = tally.recount(records)
    assert census == {"orders": {"delivered": 1, "shipped": 1}, "firing_alerts": 2}
    tally.forget(census, records[0])
    tally.forget(census, records[2])  # an orphan: counted for its alerts only
    assert census == {"orders": {"shipped": 1}, "firing_alerts": 0}
    tally.forget(None, records[1])  # no census: nothing happens


def test_a_negative_count_stays_visible() -> None:
    census = tally.new_census()
    tally.forget(census, record("shipped"))
    assert census["orders"] == {"shipped": -1}


def test_merge_restore_and_totals() -> None:
    a = {"orders": {"shipped": 2, "accepted": 1}, "firing_alerts": 1}
    b = {"orders": {"shipped": 1, "delivered": 4}, "firing_alerts": 0}
    merged = tally.merge([a, b, tally.new_census()])
    assert merged == {"orders": {"shipped": 3, "accepted": 1, "delivered": 4},
                      "firing_alerts": 1}
    assert tally.orders_total(merged) == 8
    assert list(tally.statuses(merged)) == [("accepted", 1), ("delivered", 4), ("shipped", 3)]
    assert tally.restore(None) == tally.new_census()
    assert tally.restore({"orders": {"shipped": 3, "gone": 0}, "firing_alerts": 2}) == {
        "orders": {"shipped": 3}, "firing_alerts": 2}


# --- convergence on generated traffic ---


@pytest.fixture(scope="module")
def generated() -> Generated:
    return generate(GeneratorConfig(orders=150, seed=11))


def inputs(generated: Generated) -> list[InputEvent]:
    """Valid events (duplicates included) as the agent folds them, in arrival order."""
    return [(ev.key if ev.key is not None else ev.value["settlement_line_id"],
             INPUT_TOPIC_KINDS[ev.topic], ev.value) for ev in generated.events if not ev.is_bad]


def run(events: list[InputEvent], batch_sizes: list[int], *, coalesce: bool,
        retention_ms: int | None = None, end: int | None = None) -> OrderRunner:
    config = (PipelineConfig() if retention_ms is None
              else PipelineConfig(closed_order_retention_ms=retention_ms))
    runner = OrderRunner(config, thresholds.ALLOWED_LATENESS_MS, coalesce=coalesce)
    start, i = 0, 0
    while start < len(events):
        size = batch_sizes[i % len(batch_sizes)]
        runner.process_batch(events[start:start + size])
        start, i = start + size, i + 1
    if end is not None:
        runner.advance(end)
    return runner


def derived_counts(runner: OrderRunner) -> dict[str, int]:
    """Orders by the status their records derive to now (independent of counted statuses)."""
    counts: Counter[str] = Counter()
    for rec in runner.records.values():
        state = fulfillment_state(rec)
        if state is not None:
            counts[state["fulfillment_status"]] += 1
    return dict(counts)


def assert_consistent(runner: OrderRunner) -> None:
    assert runner.census == tally.recount(runner.records.values())
    assert runner.census["orders"] == derived_counts(runner)
    assert runner.census["firing_alerts"] == sum(
        tally.firing_alerts(rec) for rec in runner.records.values())


@pytest.mark.parametrize("coalesce", [False, True])
@pytest.mark.parametrize("batch_sizes", [[1], [7, 300, 2], [100_000]])
def test_census_equals_recount_and_ground_truth(generated: Generated, coalesce: bool,
                                                batch_sizes: list[int]) -> None:
    runner = run(inputs(generated), batch_sizes, coalesce=coalesce,
                 end=generated.truth.stream_time)
    assert_consistent(runner)
    # Every order the generator meant to exist is counted under the status it intended.
    truth = Counter(order["fulfillment_status"] for order in generated.truth.orders.values())
    assert runner.census["orders"] == dict(truth)
    assert runner.census["firing_alerts"] > 0  # the traffic breaches SLAs: alerts are counted


def test_expired_orders_leave_the_census(generated: Generated) -> None:
    events = inputs(generated)
    runner = run(events, [50], coalesce=True, retention_ms=6 * HOUR,
                 end=generated.truth.stream_time + 400 * 24 * HOUR)
    assert_consistent(runner)
    expired = {key for key, _, _ in events} - set(runner.records)
    assert expired  # closed orders left the table, and the census with them
    assert tally.orders_total(runner.census) < len(generated.truth.orders)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 60), min_size=1,
                                                        max_size=4),
       coalesce=st.booleans(), expire=st.booleans())
def test_census_converges_in_any_arrival_order(seed: int, sizes: list[int], coalesce: bool,
                                               expire: bool) -> None:
    generated = _small_traffic()
    events = inputs(generated)
    in_order = run(events, [len(events)], coalesce=coalesce)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    shuffled += random.Random(seed + 1).sample(events, k=len(events) // 10)  # redeliveries
    retention = 6 * HOUR if expire else None
    end = generated.truth.stream_time + (400 * 24 * HOUR if expire else 0)
    runner = run(shuffled, sizes, coalesce=coalesce, retention_ms=retention, end=end)
    assert_consistent(runner)
    if not expire:  # statuses are a function of the event set: any order gives the same
        assert runner.census["orders"] == in_order.census["orders"]


_SMALL: list[Generated] = []


def _small_traffic() -> Generated:
    if not _SMALL:
        _SMALL.append(generate(GeneratorConfig(orders=40, seed=23)))
    return _SMALL[0]


# --- tables written before records carried a counted status ---


def test_recount_adopts_records_without_a_counted_status(generated: Generated) -> None:
    runner = run(inputs(generated), [500], coalesce=True)
    legacy = {key: {k: v for k, v in rec.items() if k != tally.COUNTED_STATUS}
              for key, rec in runner.records.items()}
    assert tally.recount(legacy.values())["orders"] == {}  # not counted without adoption
    reloaded = OrderRunner(PipelineConfig(), thresholds.ALLOWED_LATENESS_MS, legacy,
                           coalesce=True)
    assert reloaded.census == runner.census
    counted = {key for key, rec in runner.records.items() if tally.COUNTED_STATUS in rec}
    assert reloaded.touched == counted  # adopted records are rewritten by a replay
