"""Semantic validation: schema-valid events that must be dead-lettered, and ones that must not."""

from __future__ import annotations

from typing import Any

import pytest

from tables.fulfillment import validate

from .events import T0, line, order, ret, settlement, shipment


def test_good_events_pass() -> None:
    assert validate("order", order()) is None
    assert validate("order", order("cancelled", T0)) is None
    assert validate("order", order("updated", T0, lines=[])) is None  # header-only update
    assert validate("shipment", shipment("in_transit", T0, lines={})) is None
    assert validate("return", ret("requested", T0)) is None
    assert validate("return", ret("refunded", T0, refund_amount=100)) is None
    assert validate("settlement", settlement("refund", -100, T0)) is None
    assert validate("settlement", settlement("fee", -15, T0, order_id=None)) is None


def test_unknown_enum_symbols_are_not_dead_lettered() -> None:
    # Newer producers may add symbols; readers see "unknown" and the fold ignores them.
    assert validate("order", order("unknown", T0)) is None
    assert validate("shipment", shipment("unknown", T0)) is None
    assert validate("settlement", settlement("unknown", 5, T0)) is None


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, **changes}


@pytest.mark.parametrize(
    ("kind", "event", "fragment"),
    [
        ("order", order(lines=[]), "no lines"),
        ("order", order(total=None, lines=[line("l1", 1)], totals=None), "no totals"),
        ("order", order(currency="XYZ"), "ISO-4217"),
        ("order", order(currency="usd"), "ISO-4217"),
        ("order", order(lines=[line("l1", -1)]), "negative quantity"),
        ("order", order(lines=[line("l1", 1, unit_price=-5)]), "negative unit_price"),
        ("order", order(lines=[line("l1", 1), line("l1", 2)]), "twice"),
        ("order", order("line_cancelled", T0, lines=[]), "names no lines"),
        ("order", order("line_cancelled", T0, lines=[line("l1", 2, affected=3)]), "affects 3"),
        ("order", order("backordered", T0, lines=[line("l1", 2, affected=-1)]), "negative"),
        ("order", order("substituted", T0, lines=[line("l1", 2, affected=1)]), "substituted_sku"),
        ("order", _with(order(), event_id=""), "event_id"),
        ("order", _with(order(), order_id=""), "order_id"),
        ("order", _with(order(), event_time=-1), "event_time"),
        ("shipment", shipment("shipped", T0, lines={"l1": -2}), "negative quantity"),
        ("shipment", _with(shipment("shipped", T0), shipment_id=""), "shipment_id"),
        ("return", ret("received", T0, lines={"l1": -1}), "negative quantity"),
        ("return", ret("refunded", T0, refund_amount=-10), "refund_amount is negative"),
        ("return", ret("refunded", T0, refund_amount=10, currency=None), "ISO-4217"),
        ("settlement", settlement("charge", -100, T0), "negative amount"),
        ("settlement", settlement("charge", 100, T0, currency="BTC"), "ISO-4217"),
        ("settlement", settlement("charge", 100, T0, currency="XAU"), "ISO-4217"),
        ("settlement", _with(settlement("fee", 1, T0), settlement_line_id=""), "line_id"),
        (
            "settlement",
            _with(settlement("fee", 1, T0), settlement_period_start=T0, settlement_period_end=0),
            "period",
        ),
        ("payment", order(), "unknown event kind"),
        (
            "shipment",
            {"event_id": "x", "event_time": T0, "source_system": "s", "order_id": "o",
             "shipment_id": "s-1"},
            "malformed",
        ),
    ],
)
def test_semantically_invalid_events_get_a_reason(
    kind: str, event: dict[str, Any], fragment: str
) -> None:
    reason = validate(kind, event)
    assert reason is not None
    assert fragment in reason
