"""Every declared SLA rule's condition and deadline, on states built by the real fold."""

from __future__ import annotations

from typing import Any

import pytest

from tables.fulfillment import State, derive, new_state, step
from tables.sla import deadlines_for, evaluate_metric, evaluate_order, metric_subject
from tables.sla_rules import Rule, load_rules

from .events import DAY, HOUR, MIN, T0, kind_of, order, ret, settlement, shipment

RULES = load_rules()
BY_NAME = {rule.name: rule for rule in RULES}
SHIP_BY = T0 + 2 * DAY  # the event builders' promises
DELIVER_BY = T0 + 5 * DAY


def facts(*events: dict[str, Any], order_id: str = "o-1") -> State:
    state = new_state(order_id)
    for event in events:
        step(state, kind_of(event), event)
    return state


def fired(state: Any, now_ms: int, **kw: Any) -> dict[str, Any]:
    return {b.rule: b for b in evaluate_order(RULES, state, now_ms, **kw)}


def walk(status: str, t: int, **kw: Any) -> list[dict[str, Any]]:
    """One shipment through allocated -> ... -> status, one minute a step."""
    path = ["allocated", "picked", "packed", "shipped", "in_transit", "delivered"]
    return [shipment(s, t + i * MIN, **kw) for i, s in enumerate(path[: path.index(status) + 1])]


# --- order_not_allocated ---


def test_not_allocated_fires_exactly_at_the_deadline() -> None:
    state = facts(order("placed", T0))
    assert "order_not_allocated" not in fired(state, T0 + 24 * HOUR - 1)
    breach = fired(state, T0 + 24 * HOUR)["order_not_allocated"]
    assert breach.since_ms == T0 + 24 * HOUR
    assert breach.order_id == "o-1" and breach.severity == "warning"
    assert breach.labels == {"channel": "web"}
    assert "o-1" in breach.summary and "not allocated" in breach.summary
    assert breach.correlation_id == "corr-o-1"


def test_not_allocated_clears_on_allocation_or_cancellation() -> None:
    later = T0 + 30 * HOUR
    assert "order_not_allocated" not in fired(facts(order(), *walk("allocated", T0 + HOUR)), later)
    assert "order_not_allocated" not in fired(facts(order(), order("cancelled", T0 + HOUR)), later)


# --- ship_by_breached ---


def test_ship_by_fires_at_the_promise_even_when_partially_shipped() -> None:
    partial = walk("shipped", T0 + HOUR, lines={"l1": 2})
    state = facts(order(), *partial)
    assert "ship_by_breached" not in fired(state, SHIP_BY - 1)
    breach = fired(state, SHIP_BY)["ship_by_breached"]
    assert breach.severity == "critical"
    assert breach.labels == {"channel": "web", "warehouse": "wms-east", "carrier": "ups"}


def test_ship_by_clears_when_fully_shipped() -> None:
    state = facts(order(), *walk("shipped", T0 + HOUR))
    assert "ship_by_breached" not in fired(state, SHIP_BY + DAY)


def test_orders_without_a_promise_never_breach_ship_by() -> None:
    state = facts(order(promised_ship_by=None, promised_deliver_by=None))
    assert set(fired(state, T0 + 30 * DAY)) == {"order_not_allocated"}


# --- delivery_late ---


def test_delivery_late_counts_unshipped_orders_too() -> None:
    # The customer's promise is broken whether or not the parcel left the warehouse.
    unshipped = facts(order(), *walk("allocated", T0 + HOUR))
    assert "delivery_late" not in fired(unshipped, DELIVER_BY - 1)
    assert fired(unshipped, DELIVER_BY + HOUR)["delivery_late"].since_ms == DELIVER_BY
    shipped = facts(order(), *walk("in_transit", T0 + HOUR))
    assert "delivery_late" not in fired(shipped, DELIVER_BY - 1)
    assert fired(shipped, DELIVER_BY)["delivery_late"].since_ms == DELIVER_BY


def test_delivery_late_clears_on_delivery() -> None:
    state = facts(order(), *walk("delivered", T0 + HOUR))
    assert fired(state, DELIVER_BY + DAY) == {}


# --- shipment_exception_open ---


def test_exception_open_is_per_shipment_and_counts_from_the_exception() -> None:
    events = [
        order(),
        *walk("shipped", T0 + HOUR, shipment_id="s-1", lines={"l1": 2}),
        *walk("shipped", T0 + HOUR, shipment_id="s-2", lines={"l2": 1}),
        shipment("exception", T0 + 5 * HOUR, shipment_id="s-1", exception_reason="damaged"),
        shipment("exception", T0 + 7 * HOUR, shipment_id="s-2", exception_reason=None),
    ]
    state = facts(*events)
    at = [b for b in evaluate_order(RULES, state, T0 + 29 * HOUR)
          if b.rule == "shipment_exception_open"]
    assert [b.labels["shipment_id"] for b in at] == ["s-1"]
    assert "damaged" in at[0].summary and at[0].since_ms == T0 + 29 * HOUR
    both = [b for b in evaluate_order(RULES, state, T0 + 31 * HOUR)
            if b.rule == "shipment_exception_open"]
    assert sorted(b.labels["shipment_id"] for b in both) == ["s-1", "s-2"]
    assert len({b.fingerprint for b in both}) == 2


def test_exception_clears_on_progress() -> None:
    events = [order(), *walk("shipped", T0 + HOUR),
              shipment("exception", T0 + 5 * HOUR, exception_reason="address"),
              shipment("in_transit", T0 + 40 * HOUR)]
    assert "shipment_exception_open" not in fired(facts(*events), T0 + 41 * HOUR)


def test_repeated_exception_scans_keep_the_first_deadline() -> None:
    # A daily "exception" re-scan must neither push the deadline out nor resolve the page.
    events = [order(), *walk("shipped", T0),
              shipment("exception", T0 + HOUR, exception_reason="address"),
              shipment("exception", T0 + 20 * HOUR, exception_reason="address")]
    state = facts(*events)
    assert fired(state, T0 + 25 * HOUR)["shipment_exception_open"].since_ms == T0 + 25 * HOUR
    fs = derive(state)  # the canonical state alone only knows the latest scan
    assert fired(fs, T0 + 44 * HOUR)["shipment_exception_open"].since_ms == T0 + 44 * HOUR
    after_progress = facts(*events, shipment("in_transit", T0 + 30 * HOUR),
                           shipment("exception", T0 + 40 * HOUR))
    assert "shipment_exception_open" not in fired(after_progress, T0 + 63 * HOUR)
    assert "shipment_exception_open" in fired(after_progress, T0 + 64 * HOUR)


# --- refund_overdue ---


def test_refund_overdue_per_return_from_facts() -> None:
    events = [order(), *walk("delivered", T0 + HOUR),
              ret("received", T0 + 3 * DAY, return_id="r-1"),
              ret("received", T0 + 4 * DAY, return_id="r-2", lines={"l2": 1})]
    state = facts(*events)
    due = T0 + 3 * DAY + 72 * HOUR
    assert "refund_overdue" not in fired(state, due - 1)
    overdue = [b for b in evaluate_order(RULES, state, due + DAY) if b.rule == "refund_overdue"]
    assert sorted(b.labels["return_id"] for b in overdue) == ["r-1", "r-2"]


def test_refund_overdue_clears_on_refund_and_skips_rejected_returns() -> None:
    base = [order(), *walk("delivered", T0 + HOUR), ret("received", T0 + 3 * DAY)]
    refunded = facts(*base, ret("refunded", T0 + 4 * DAY, refund_amount=1000))
    rejected = facts(*base, ret("rejected", T0 + 4 * DAY))
    for state in (refunded, rejected):
        assert "refund_overdue" not in fired(state, T0 + 10 * DAY)


def test_refund_overdue_from_a_fulfillment_state_is_per_order() -> None:
    fs = derive(facts(order(), *walk("delivered", T0 + HOUR), ret("received", T0 + 3 * DAY)))
    assert fs is not None
    breach = fired(fs, T0 + 6 * DAY)["refund_overdue"]
    assert "return_id" not in breach.labels and breach.since_ms == T0 + 6 * DAY


# --- orphan_event ---


def test_orphan_fires_after_the_grace_from_the_first_event() -> None:
    state = facts(
        shipment("shipped", T0 + 10 * MIN, order_id="o-9"),
        settlement("charge", 2500, T0, order_id="o-9", provider="paypal"),
        order_id="o-9",
    )
    assert fired(state, T0 + 60 * MIN - 1) == {}
    breach = fired(state, T0 + 60 * MIN)["orphan_event"]
    assert breach.order_id == "o-9"
    assert breach.labels == {"warehouse": "wms-east", "carrier": "ups", "provider": "paypal"}
    assert deadlines_for(RULES, state) == [("sla:o-9:orphan_event", T0 + 60 * MIN)]


def test_orphan_clears_when_the_order_arrives() -> None:
    state = facts(shipment("allocated", T0), order("placed", T0 + 2 * HOUR))
    assert "orphan_event" not in fired(state, T0 + 3 * HOUR)


# --- reconciliation-fed rules ---


def mismatch(category: str, status: str = "open", detected_at: int = T0 + 6 * DAY) -> dict:
    return {
        "mismatch_id": f"o-1:{category}", "order_id": "o-1", "category": category,
        "status": status, "expected": 3000, "actual": 0, "difference": -3000,
        "currency": "USD", "provider": "stripe", "settlement_ids": [],
        "correlation_id": "corr-recon", "detected_at": detected_at, "resolved_at": None,
    }


@pytest.mark.parametrize(
    ("rule", "category"), [("unsettled_order", "unsettled"), ("missing_refund", "missing_refund")]
)
def test_mismatch_rules_follow_open_mismatches_of_their_category(rule: str, category: str) -> None:
    state = facts(order(), *walk("delivered", T0 + HOUR))
    now = T0 + 7 * DAY
    breach = fired(state, now, mismatches=[mismatch(category)])[rule]
    assert breach.labels["provider"] == "stripe"
    assert breach.correlation_id == "corr-recon"
    assert "-3000 USD" in breach.summary
    assert rule not in fired(state, now, mismatches=[mismatch(category, status="resolved")])
    assert rule not in fired(state, now, mismatches=[mismatch("fee_anomaly")])
    assert rule not in fired(state, T0 + 6 * DAY - 1, mismatches=[mismatch(category)])


# --- deadlines_for ---


def test_deadlines_are_the_times_evaluation_starts_breaching() -> None:
    state = facts(order("placed", T0))
    deadlines = deadlines_for(RULES, state)
    assert deadlines == [
        ("sla:o-1:order_not_allocated", T0 + 24 * HOUR),
        ("sla:o-1:ship_by_breached", SHIP_BY),
        ("sla:o-1:delivery_late", DELIVER_BY),
    ]
    for deadline_id, due in deadlines:
        rule = deadline_id.split(":")[2]
        assert rule not in fired(state, due - 1) and rule in fired(state, due)
    assert deadlines_for(RULES, state, now_ms=T0 + 24 * HOUR) == [
        ("sla:o-1:ship_by_breached", SHIP_BY),
        ("sla:o-1:delivery_late", DELIVER_BY),
    ]


def test_deadlines_vanish_when_the_milestone_is_reached() -> None:
    state = facts(order(), *walk("delivered", T0 + HOUR))
    assert deadlines_for(RULES, state) == []


def test_deadline_ids_name_the_shipment() -> None:
    state = facts(order(), *walk("shipped", T0), shipment("exception", T0 + HOUR))
    assert ("sla:o-1:shipment_exception_open:s-1", T0 + 25 * HOUR) in deadlines_for(RULES, state)


def test_growing_routing_labels_keep_the_fingerprint() -> None:
    # A second warehouse joining the order must not turn one problem into two pages.
    one = facts(order(), *walk("shipped", T0, lines={"l1": 2}))
    two = facts(order(), *walk("shipped", T0, lines={"l1": 2}),
                *walk("packed", T0, shipment_id="s-2", lines={"l2": 1}, warehouse="wms-west"))
    before, after = fired(one, SHIP_BY)["ship_by_breached"], fired(two, SHIP_BY)["ship_by_breached"]
    assert before.labels["warehouse"] == "wms-east"
    assert after.labels["warehouse"] == "wms-east,wms-west"
    assert before.fingerprint == after.fingerprint


def test_fact_store_and_fulfillment_state_agree_on_milestone_rules() -> None:
    state = facts(order(), *walk("shipped", T0 + HOUR, lines={"l1": 2}))
    fs = derive(state)
    now = DELIVER_BY + DAY
    assert {r: b.since_ms for r, b in fired(state, now).items()} == {
        r: b.since_ms for r, b in fired(fs, now).items()
    }


# --- metric rules ---


def metric(name: str = "shipment_exception_rate", value: float = 0.08, count: int = 40,
           start: int = T0, length: int = HOUR, **kw: Any) -> dict[str, Any]:
    return {"name": name, "group_key": "warehouse=wms-east", "labels": {"warehouse": "wms-east"},
            "window_start": start, "window_end": start + length, "count": count,
            "sum": 0, "value": value, "p50": None, "p95": None, "p99": None,
            "late_events": 0, "unit": None, **kw}


def test_exception_rate_above_threshold_breaches_per_warehouse() -> None:
    [breach] = evaluate_metric(RULES, metric())
    assert breach.rule == "shipment_exception_rate_high" and breach.order_id is None
    assert breach.labels == {"warehouse": "wms-east"} and breach.key_labels == ("warehouse",)
    assert breach.since_ms == T0 + HOUR and breach.expires_at == T0 + 3 * HOUR
    assert "wms-east" in breach.summary and "0.08" in breach.summary and "1h" in breach.summary
    assert metric_subject(metric()) == "metric:shipment_exception_rate:warehouse=wms-east"


@pytest.mark.parametrize(
    "kw",
    [{"value": 0.05}, {"count": 19}, {"length": 5 * MIN}, {"name": "orders_placed"}],
    ids=["at-threshold", "too-few-events", "other-window", "other-metric"],
)
def test_exception_rate_does_not_breach(kw: dict[str, Any]) -> None:
    assert evaluate_metric(RULES, metric(**kw)) == []


def test_order_to_ship_p95_reads_the_p95_field() -> None:
    slow = metric("order_to_ship_ms", value=1.0, count=80, p95=40 * HOUR, unit="ms")
    [breach] = evaluate_metric(RULES, slow)
    assert breach.rule == "order_to_ship_p95_high" and breach.for_ms == HOUR
    assert evaluate_metric(RULES, {**slow, "p95": 30.0 * HOUR}) == []
    assert evaluate_metric(RULES, {**slow, "p95": None}) == []


def test_order_rules_ignore_metrics_and_metric_rules_ignore_orders() -> None:
    metric_rules: list[Rule] = [r for r in RULES if r.scope == "metric"]
    assert evaluate_order(metric_rules, facts(order()), T0 + 30 * DAY) == []
    assert len(metric_rules) == 2
