"""The ground truth is internally consistent and says what the stories meant."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from streams.generator import Generated
from streams.generator.thresholds import band_fee

MISMATCHES = {"unsettled", "orphan_settlement", "amount_mismatch", "duplicate_settlement",
              "refund_without_return", "refund_mismatch", "missing_refund", "currency_mismatch",
              "fee_anomaly", "chargeback"}
SLA_RULES = {"order_not_allocated", "ship_by_breached", "delivery_late",
             "shipment_exception_open", "refund_overdue", "orphan_event"}


def _valid(run: Generated) -> list[dict[str, Any]]:
    return [ev.value for ev in run.events
            if ev.value is not None and not ev.is_bad and not ev.is_duplicate]


def test_counts_add_up(run: Generated) -> None:
    counts = run.truth.counts
    valid = _valid(run)
    assert counts["valid_events"] == len(valid) == len({v["event_id"] for v in valid})
    assert counts["events_emitted"] == len(run.events)
    assert counts["events_emitted"] == counts["valid_events"] + counts["duplicates"] + counts[
        "bad"]
    per_order = Counter(v["order_id"] for v in valid)
    for oid, order in run.truth.orders.items():
        assert order["event_count"] == per_order[oid]


def test_line_quantities_are_bounded(run: Generated) -> None:
    for order in run.truth.orders.values():
        for line in order["lines"].values():
            assert 0 <= line["cancelled"] <= line["ordered"]
            assert line["delivered"] <= line["shipped"] <= line["packed"] <= line["allocated"]
            assert line["refunded"] <= line["returned"] <= line["delivered"]
            if order["story"] != "over_ship":
                assert line["shipped"] + line["cancelled"] <= line["ordered"]
        over = any(ln["shipped"] > ln["ordered"] for ln in order["lines"].values())
        assert over == (order["story"] == "over_ship") == ("over_shipped" in order["flags"])


def test_money_matches_the_settlement_lines(run: Generated) -> None:
    sums: dict[str, Counter[str]] = defaultdict(Counter)
    for v in _valid(run):
        oid = v.get("settlement_line_id") and v["order_id"]
        if oid in run.truth.orders and v["currency"] == run.truth.orders[oid]["currency"]:
            sums[oid][v["transaction_type"]] += abs(v["amount"])
    for oid, order in run.truth.orders.items():
        assert order["charged_amount"] == sums[oid]["charge"]
        assert order["refunded_amount"] == sums[oid]["refund"]
        assert order["fee_amount"] == sums[oid]["fee"]
        assert order["chargeback_amount"] == sums[oid]["chargeback"]
        assert 0 <= order["expected_charge"] <= order["order_total"]


def test_totals_are_consistent(run: Generated) -> None:
    for v in _valid(run):
        if v.get("type") == "placed":
            t = v["totals"]
            assert t["subtotal"] == sum(ln["quantity"] * ln["unit_price"] for ln in v["lines"])
            tax = 0 if t["taxes_included"] else t["tax"]
            assert t["total"] == t["subtotal"] - t["discounts"] + tax + t["shipping"]


def test_clean_stories_settle_exactly(run: Generated) -> None:
    clean = {"happy", "split", "partial_cancel", "substitution", "exception", "late_delivery",
             "ship_late", "over_ship"}
    for order in run.truth.orders.values():
        if order["story"] in clean:
            assert order["charged_amount"] == order["expected_charge"], order["story"]
            assert order["financial_status"] == "settled"
        if order["story"] == "happy":
            assert order["fulfillment_status"] == "delivered"
            assert order["fee_amount"] == band_fee(order["provider"], order["charged_amount"])


def test_mismatches_are_the_intended_ones(run: Generated) -> None:
    found = run.truth.mismatches + [m for m in run.truth.not_yet_due if m["kind"] == "mismatch"]
    assert {m["category"] for m in found} == MISMATCHES
    by_story = Counter()
    for m in found:
        story = run.truth.orders[m["order_id"]]["story"] if m["order_id"] in run.truth.orders \
            else "orphan"
        by_story[story] += 1
        assert m["difference"] == m["actual"] - m["expected"]
    stories = run.truth.counts["stories"]
    for story in ("short_payment", "duplicate_settlement", "unsettled", "fee_anomaly"):
        assert by_story[story] == stories[story], story
    assert not by_story["happy"]


def test_every_orphan_is_expected_to_surface(run: Generated) -> None:
    truth = run.truth
    assert len(truth.orphans) == truth.counts["stories"]["orphan"]
    flagged = {m["order_id"] for m in truth.mismatches if m["category"] == "orphan_settlement"}
    alerted = {b["order_id"] for b in truth.sla_breaches if b["rule"] == "orphan_event"}
    for orphan in truth.orphans:
        assert orphan["order_id"] not in truth.orders
        if "settlements" in orphan["topics"]:
            assert orphan["order_id"] in flagged
        if orphan["order_id"] is not None:
            assert orphan["order_id"] in alerted


def test_sla_breaches_follow_the_deadlines(run: Generated) -> None:
    truth = run.truth
    assert {b["rule"] for b in truth.sla_breaches} == SLA_RULES
    for b in truth.sla_breaches:
        assert b["deadline"] <= truth.stream_time
        assert b["resolved_at"] is None or b["resolved_at"] > b["deadline"]
    for order_id, order in truth.orders.items():
        rules = {b["rule"] for b in truth.sla_breaches if b["order_id"] == order_id}
        if order["story"] == "happy":
            assert not rules
        if order["story"] == "late_delivery":
            assert "delivery_late" in rules
            assert order["delivered_at"] > order["promised_deliver_by"]
        if order["story"] == "ship_late":
            assert "ship_by_breached" in rules


def test_statuses_per_story(run: Generated) -> None:
    for order in run.truth.orders.values():
        story = order["story"]
        if story == "cancel":
            assert order["fulfillment_status"] == "cancelled"
            assert order["charged_amount"] == 0 == order["expected_charge"]
        elif story == "return_full":
            assert (order["returns_status"], order["financial_status"]) == ("returned",
                                                                            "refunded")
        elif story == "return_partial":
            assert order["returns_status"] == "partially_returned"
            assert order["financial_status"] == "partially_refunded"
        elif story == "return_rejected":
            assert order["returns_status"] == "rejected"
        elif story == "split":
            assert order["split"] and len(order["shipment_ids"]) == 2
        elif story == "partial_cancel":
            assert 0 < order["expected_charge"] < order["order_total"]
