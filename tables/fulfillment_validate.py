"""Semantic checks for events that are schema-valid but cannot be folded meaningfully.

The agent dead-letters an event when ``validate`` returns a reason. Symbols a newer producer
added (decoded as ``"unknown"``) are *not* invalid: the fold records them and moves on, so a
schema evolution never floods the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tables.fulfillment_currencies import CURRENCY_CODES

Event = Mapping[str, Any]

_LINE_TYPES = ("line_cancelled", "backordered", "substituted")


def _envelope(event: Event, order_id_nullable: bool) -> str | None:
    if not event.get("event_id"):
        return "event_id is empty"
    event_time = event.get("event_time")
    if not isinstance(event_time, int) or event_time < 0:
        return f"event_time {event_time!r} is not a non-negative epoch-millis int"
    if not event.get("source_system"):
        return "source_system is empty"
    if not order_id_nullable and not event.get("order_id"):
        return "order_id is empty"
    return None


def _currency(code: Any, what: str = "currency") -> str | None:
    if code not in CURRENCY_CODES:
        return f"{what} {code!r} is not a known ISO-4217 code"
    return None


def _order(event: Event) -> str | None:
    kind = event["type"]
    reason = _currency(event.get("currency"))
    if reason:
        return reason
    lines = event.get("lines") or []
    if kind == "placed" and not lines:
        return "placed order has no lines"
    if kind == "placed" and event.get("totals") is None:
        return "placed order has no totals"
    if kind in _LINE_TYPES and not lines:
        return f"{kind} event names no lines"
    seen: set[str] = set()
    for line in lines:
        line_id = line.get("line_id")
        if not line_id:
            return "order line without line_id"
        if kind in ("placed", "updated"):
            if line_id in seen:
                return f"line {line_id} appears twice in the order snapshot"
            seen.add(line_id)
        if line["quantity"] < 0:
            return f"line {line_id} has negative quantity {line['quantity']}"
        if line["unit_price"] < 0:
            return f"line {line_id} has negative unit_price {line['unit_price']}"
        if line.get("line_discount", 0) < 0:
            return f"line {line_id} has negative line_discount"
        affected = line.get("quantity_affected")
        if affected is not None:
            if affected < 0:
                return f"line {line_id} has negative quantity_affected {affected}"
            if affected > line["quantity"]:
                return f"line {line_id} affects {affected} of {line['quantity']} units"
        if kind == "substituted" and not line.get("substituted_sku"):
            return f"substituted line {line_id} has no substituted_sku"
        price = line.get("substituted_unit_price")
        if price is not None and price < 0:
            return f"line {line_id} has negative substituted_unit_price"
    totals = event.get("totals")
    if totals is not None:
        for name in ("subtotal", "discounts", "tax", "shipping", "total"):
            if totals[name] < 0:
                return f"totals.{name} is negative ({totals[name]})"
    return None


def _quantities(lines: Any, owner: str) -> str | None:
    for line in lines or []:
        if not line.get("line_id"):
            return f"{owner} line without line_id"
        if line["quantity"] < 0:
            return f"{owner} line {line['line_id']} has negative quantity {line['quantity']}"
    return None


def _shipment(event: Event) -> str | None:
    if not event.get("shipment_id"):
        return "shipment_id is empty"
    if not isinstance(event["status"], str):
        return f"shipment status {event['status']!r} is not a symbol"
    return _quantities(event.get("lines"), f"shipment {event['shipment_id']}")


def _return(event: Event) -> str | None:
    if not event.get("return_id"):
        return "return_id is empty"
    if not isinstance(event["status"], str):
        return f"return status {event['status']!r} is not a symbol"
    reason = _quantities(event.get("lines"), f"return {event['return_id']}")
    if reason:
        return reason
    amount = event.get("refund_amount")
    if amount is not None:
        if amount < 0:
            return f"refund_amount is negative ({amount})"
        return _currency(event.get("currency"), "refund currency")
    currency = event.get("currency")
    return None if currency is None else _currency(currency, "refund currency")


def _settlement(event: Event) -> str | None:
    if not event.get("settlement_id"):
        return "settlement_id is empty"
    if not event.get("settlement_line_id"):
        return "settlement_line_id is empty"
    reason = _currency(event.get("currency"))
    if reason:
        return reason
    # Providers sign refunds and fees either way, but a negative *charge* is a reversal that
    # must come as refund/adjustment, otherwise charged totals silently shrink.
    if event["transaction_type"] == "charge" and event["amount"] < 0:
        return f"charge line has negative amount {event['amount']}"
    posted = event.get("posted_time")
    if not isinstance(posted, int) or posted < 0:
        return f"posted_time {posted!r} is not a non-negative epoch-millis int"
    start, end = event.get("settlement_period_start"), event.get("settlement_period_end")
    if start is not None and end is not None and start > end:
        return "settlement period ends before it starts"
    return None


_CHECKS: dict[str, tuple[bool, Callable[[Event], str | None]]] = {
    "order": (False, _order),
    "shipment": (False, _shipment),
    "return": (False, _return),
    "settlement": (True, _settlement),
}


def validate(event_kind: str, event: Event) -> str | None:
    """A human reason why ``event`` cannot be folded, or None when it is fine."""
    try:
        order_id_nullable, check = _CHECKS[event_kind]
    except KeyError:
        return f"unknown event kind {event_kind!r}"
    try:
        return _envelope(event, order_id_nullable) or check(event)
    except (KeyError, TypeError) as exc:  # a field the schema requires is missing or mistyped
        return f"malformed {event_kind} event: {type(exc).__name__}: {exc}"
