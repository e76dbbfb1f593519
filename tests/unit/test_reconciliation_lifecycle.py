"""Mismatch lifecycle (open -> resolved, replay idempotence), deadlines, and the fold inputs."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import fastavro
from fastavro.validation import validate as avro_validate

from tables import schema_files
from tables.clock import Deadlines
from tables.fulfillment import State, derive, new_state, step
from tables.reconciliation import (
    advance,
    deadlines_for,
    evaluate,
    inputs_from_fold,
    is_reconciled,
    schedule_reevaluation,
    settlement_line,
    transitions,
)

from .events import DAY, HOUR, T0, kind_of, line, order, ret, settlement, shipment
from .test_reconciliation_rules import LAG, SHIPPED, order_money, paid, refund, stl

NOW = SHIPPED + LAG


def test_transitions_open_change_resolve() -> None:
    opened = evaluate(order_money(), [], (), NOW)
    records, stored = advance({}, opened, NOW)
    assert [(r["mismatch_id"], r["status"]) for r in records] == [("o-1:unsettled", "open")]
    # Same difference, later: nothing to emit, first detection kept.
    again = evaluate(order_money(), [], (), NOW + DAY)
    assert transitions(stored, again, NOW + DAY) == []
    records, stored = advance(stored, again, NOW + DAY)
    assert stored["o-1:unsettled"]["detected_at"] == NOW
    # The amount changes (a partial charge arrives short): re-emitted open, same detected_at.
    short = evaluate(order_money(), paid(1_000), (), NOW + 2 * DAY)
    records, stored = advance(stored, short, NOW + 2 * DAY)
    assert [(r["category"], r["status"]) for r in records] == [
        ("amount_mismatch", "open"),
        ("unsettled", "resolved"),
    ]
    resolved = records[1]
    assert resolved["resolved_at"] == NOW + 2 * DAY
    assert resolved["detected_at"] == NOW
    # Fully paid: the amount mismatch resolves and nothing stays open.
    records, stored = advance(
        stored, evaluate(order_money(), paid(), (), NOW + 3 * DAY), NOW + 3 * DAY
    )
    assert [(r["category"], r["status"]) for r in records] == [("amount_mismatch", "resolved")]
    assert stored == {}


def test_changed_amount_keeps_first_detection() -> None:
    first = evaluate(order_money(), paid(2_000), (), NOW)
    _, stored = advance({}, first, NOW)
    changed = evaluate(order_money(), paid(2_500), (), NOW + DAY)
    records = transitions(stored, changed, NOW + DAY)
    assert len(records) == 1
    assert records[0]["actual"] == 2_500 and records[0]["detected_at"] == NOW


def test_replaying_a_settlement_report_creates_nothing_new() -> None:
    report = [*paid(2_900), stl("chargeback", -100, SHIPPED + 9 * DAY)]
    _, stored = advance({}, evaluate(order_money(), report, (), NOW), NOW)
    replayed = report + [replace(ln, event_time=ln.event_time + DAY) for ln in report]
    assert transitions(stored, evaluate(order_money(), replayed, (), NOW + DAY), NOW + DAY) == []


def test_evaluate_does_not_depend_on_line_order() -> None:
    lines = [
        *paid(3_000),
        stl("charge", 3_000, SHIPPED + 2 * DAY, settlement_id="st-2"),
        stl("refund", -500, SHIPPED + 3 * DAY),
        stl("fee", -5, SHIPPED + 3 * DAY),
        stl("chargeback", -50, SHIPPED + 4 * DAY),
    ]
    refunds = [refund(700)]
    expected = evaluate(order_money(), lines, refunds, NOW)
    rng = random.Random(3)
    for _ in range(20):
        shuffled = lines[:]
        rng.shuffle(shuffled)
        assert evaluate(order_money(), shuffled, refunds, NOW) == expected


def test_deadlines_drive_reevaluation_on_the_wheel() -> None:
    order = order_money()
    now = SHIPPED + HOUR
    assert evaluate(order, [], (), now) == {}
    due = deadlines_for(order, [], (), now)
    assert due == [SHIPPED + LAG]
    wheel = Deadlines()
    schedule_reevaluation(wheel, "o-1", due)
    assert wheel.next_due() == SHIPPED + LAG
    assert wheel.pop_due(SHIPPED + LAG - 1) == []
    fired = wheel.pop_due(SHIPPED + LAG)
    assert fired == [("reconcile:o-1", {"order_id": "o-1"})]
    assert set(evaluate(order, [], (), SHIPPED + LAG)) == {"o-1:unsettled"}
    # Nothing more can change without events: the wheel forgets the order.
    schedule_reevaluation(wheel, "o-1", deadlines_for(order, [], (), SHIPPED + LAG))
    assert len(wheel) == 0


def test_deadlines_cover_refund_lag_and_orphan_grace() -> None:
    refunded_at = SHIPPED + 10 * DAY
    due = deadlines_for(order_money(), paid(), [refund(1_000, refunded_at)], SHIPPED + 2 * DAY)
    assert refunded_at + LAG in due
    orphan = stl("charge", 100, T0, order_id="o-9")
    assert deadlines_for(None, [orphan], (), T0) == [T0 + HOUR]
    assert deadlines_for(None, [orphan], (), T0 + HOUR) == []


_MISMATCH_SCHEMA = fastavro.parse_schema(
    schema_files.strip_logical_types(schema_files.load_schema("ReconciliationMismatch"))
)


def test_records_validate_against_the_avro_contract() -> None:
    found = evaluate(order_money(currency="EUR"), [stl("charge", 10, currency="USD")], (), NOW)
    found.update(evaluate(None, [stl("charge", 10, T0, order_id=None)], (), NOW))
    found.update(evaluate(order_money(), [*paid(), stl("chargeback", -1, NOW)], (), NOW))
    records, _ = advance({}, found, NOW)
    records += transitions(found, {}, NOW + 1)
    assert {r["status"] for r in records} == {"open", "resolved"}
    for record in records:
        assert avro_validate(record, _MISMATCH_SCHEMA, raise_errors=True)
        json.dumps(record)


# --- from the fold ---


def _fold(*events: dict[str, Any]) -> State:
    state = new_state("o-1")
    for event in events:
        step(state, kind_of(event), event)
    return state


def _placed() -> dict[str, Any]:
    # l1: 2 x 1000, l2: 1 x 500; tax 200, shipping 300 -> total 3000.
    event = order(lines=[line("l1", 2), line("l2", 1, unit_price=500)], total=3_000)
    event["totals"].update(subtotal=2_500, tax=200, shipping=300)
    return event


def _evaluate(state: State, now: int) -> dict[str, Any]:
    inputs = inputs_from_fold(state)
    return evaluate(inputs.order, inputs.settlements, inputs.refunds, now)


def test_fold_inputs_happy_path_with_partial_return() -> None:
    shipped = shipment("shipped", T0 + DAY)
    state = _fold(
        _placed(),
        shipped,
        settlement("charge", 3_000, T0 + 2 * DAY, line_id="sl-1"),
        settlement("fee", -117, T0 + 2 * DAY, line_id="sl-2"),
        ret("approved", T0 + 5 * DAY),
        ret("refunded", T0 + 8 * DAY, refund_amount=1_160),
        settlement("refund", -1_160, T0 + 9 * DAY, line_id="sl-3"),
    )
    inputs = inputs_from_fold(state)
    assert inputs.order is not None
    assert inputs.order.tax == 200 and inputs.order.shipping == 300
    assert [rf.amount for rf in inputs.refunds] == [1_160]
    assert _evaluate(state, T0 + 30 * DAY) == {}
    assert is_reconciled(inputs.order, inputs.settlements, inputs.refunds, T0 + 30 * DAY)


def test_fold_dedupes_a_resent_settlement_line() -> None:
    state = _fold(
        _placed(),
        shipment("shipped", T0 + DAY),
        settlement("charge", 3_000, T0 + 2 * DAY, line_id="sl-1"),
        settlement("charge", 3_000, T0 + 3 * DAY, line_id="sl-1"),  # same line, new event id
        settlement("fee", -117, T0 + 2 * DAY, line_id="sl-2"),
    )
    assert _evaluate(state, T0 + 30 * DAY) == {}


def test_fold_partial_cancel_and_missing_refund() -> None:
    state = _fold(
        _placed(),
        order("line_cancelled", T0 + HOUR, lines=[line("l2", 1, unit_price=500)]),
        shipment("shipped", T0 + DAY, lines={"l1": 2}),
    )
    inputs = inputs_from_fold(state)
    assert inputs.order is not None
    # l2 is 500 of 2500: its tax share 40, shipping share 60.
    from tables.reconciliation import expected_charge

    assert expected_charge(inputs.order) == 3_000 - (500 + 40 + 60)
    assert set(_evaluate(state, T0 + DAY + LAG)) == {"o-1:unsettled"}
    step(state, "settlement", settlement("charge", 2_400, T0 + 2 * DAY, line_id="sl-1"))
    step(state, "settlement", settlement("fee", -100, T0 + 2 * DAY, line_id="sl-2"))
    assert _evaluate(state, T0 + 10 * DAY) == {}
    step(state, "return", ret("refunded", T0 + 10 * DAY, refund_amount=1_000))
    found = _evaluate(state, T0 + 10 * DAY + LAG)
    assert set(found) == {"o-1:missing_refund"}


def test_fold_orphan_until_the_order_arrives() -> None:
    state = _fold(settlement("charge", 3_000, T0, line_id="sl-1"))
    assert derive(state) is None
    found = _evaluate(state, T0 + HOUR)
    assert list(found) == ["sl-1:orphan_settlement"]
    later = copy.deepcopy(state)
    step(later, "order", _placed())
    step(later, "shipment", shipment("shipped", T0 + DAY))
    records = transitions(found, _evaluate(later, T0 + 2 * HOUR), T0 + 2 * HOUR)
    assert [(r["mismatch_id"], r["status"]) for r in records] == [
        ("sl-1:orphan_settlement", "resolved")
    ]


def test_fold_state_of_an_unkeyed_line_is_an_orphan_without_order_id() -> None:
    # The producer keys a line with no order_id by its settlement_line_id.
    state = new_state("sl-77")
    step(state, "settlement", settlement("charge", 900, T0, line_id="sl-77", order_id=None))
    found = _evaluate(state, T0 + HOUR)
    assert list(found) == ["sl-77:orphan_settlement"]
    assert found["sl-77:orphan_settlement"]["order_id"] is None


def test_settlement_line_from_a_decoded_event() -> None:
    event = settlement("refund", -5, T0, line_id="sl-x", currency="EUR", provider="paypal")
    event["description"] = "Payment Refund"
    parsed = settlement_line(event)
    assert (parsed.settlement_line_id, parsed.amount, parsed.currency) == ("sl-x", -5, "EUR")
    assert (parsed.provider, parsed.description, parsed.order_id) == (
        "paypal",
        "Payment Refund",
        "o-1",
    )


def test_review_is_evaluate_deadlines_and_reconciled_in_one_pass() -> None:
    from tables.reconciliation import review

    cases = [
        (order_money(), [], []),
        (order_money(), paid(), []),
        (order_money(), paid(2_000), [refund(500)]),
        (None, [stl("charge", 5, T0, order_id="o-9")], []),
    ]
    for now in (SHIPPED, NOW, NOW + 30 * DAY):
        for order_, lines, refunds in cases:
            result = review(order_, lines, refunds, now)
            assert result.open == evaluate(order_, lines, refunds, now)
            assert result.deadlines == deadlines_for(order_, lines, refunds, now)
            assert result.reconciled == is_reconciled(order_, lines, refunds, now)


def test_reconciliation_clock_and_money_import_only_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import tables.reconciliation, tables.clock, tables.money; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'faust', 'aiokafka', 'confluent_kafka', 'fastavro', 'mode'}); print(bad)"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    assert out.stdout.strip() == "[]"
