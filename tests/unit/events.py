"""Builders for decoded input events (the shape fastavro gives the agents) used by the tests."""

from __future__ import annotations

import itertools
from typing import Any

T0 = 1_763_900_000_000
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

_ids = itertools.count(1)


def _eid(prefix: str) -> str:
    return f"{prefix}-{next(_ids):05d}"


def _envelope(prefix: str, t: int, source: str, order_id: str | None, eid: str | None) -> dict:
    return {
        "event_id": eid or _eid(prefix),
        "event_time": t,
        "source_system": source,
        "correlation_id": f"corr-{order_id}",
        "order_id": order_id,
    }


def line(
    line_id: str,
    quantity: int,
    sku: str | None = None,
    unit_price: int = 1000,
    affected: int | None = None,
    substituted_sku: str | None = None,
) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "sku": sku or f"SKU-{line_id}",
        "title": None,
        "quantity": quantity,
        "unit_price": unit_price,
        "line_discount": 0,
        "quantity_affected": affected,
        "substituted_sku": substituted_sku,
        "substituted_unit_price": None,
    }


def totals(total: int, subtotal: int | None = None) -> dict[str, Any]:
    return {
        "subtotal": total if subtotal is None else subtotal,
        "discounts": 0,
        "tax": 0,
        "shipping": 0,
        "total": total,
        "taxes_included": False,
    }


def order(
    type_: str = "placed",
    t: int = T0,
    lines: list[dict[str, Any]] | None = None,
    total: int | None = None,
    order_id: str = "o-1",
    currency: str = "USD",
    source: str = "shopify",
    eid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if lines is None:
        lines = [line("l1", 2), line("l2", 1, unit_price=500)] if type_ == "placed" else []
    if total is None and type_ in ("placed", "updated") and lines:
        total = sum(ln["quantity"] * ln["unit_price"] for ln in lines)
    event = {
        **_envelope("ord", t, source, order_id, eid),
        "type": type_,
        "channel": "web",
        "customer_ref": "cust-1",
        "external_order_ref": "#1001",
        "currency": currency,
        "lines": lines,
        "totals": None if total is None else totals(total),
        "promised_ship_by": T0 + 2 * DAY,
        "promised_deliver_by": T0 + 5 * DAY,
        "service_level": "standard",
        "ship_to_country": "US",
        "reason": None,
    }
    event.update(extra)
    return event


def shipment(
    status: str,
    t: int,
    shipment_id: str = "s-1",
    lines: dict[str, int] | None = None,
    warehouse: str | None = "wms-east",
    order_id: str = "o-1",
    eid: str | None = None,
    carrier: str | None = "ups",
    exception_reason: str | None = None,
) -> dict[str, Any]:
    if lines is None:
        lines = {"l1": 2, "l2": 1}
    return {
        **_envelope("shp", t, warehouse or "carrier-feed", order_id, eid),
        "shipment_id": shipment_id,
        "status": status,
        "lines": [{"line_id": k, "sku": None, "quantity": q} for k, q in lines.items()],
        "warehouse": warehouse,
        "carrier": carrier,
        "service_level": None,
        "tracking_number": f"1Z-{shipment_id}",
        "estimated_delivery_at": None,
        "exception_reason": exception_reason,
    }


def ret(
    status: str,
    t: int,
    return_id: str = "r-1",
    lines: dict[str, int] | None = None,
    refund_amount: int | None = None,
    order_id: str = "o-1",
    currency: str | None = "USD",
    eid: str | None = None,
) -> dict[str, Any]:
    if lines is None:
        lines = {"l1": 1}
    return {
        **_envelope("ret", t, "shopify", order_id, eid),
        "return_id": return_id,
        "status": status,
        "lines": [
            {"line_id": k, "sku": None, "quantity": q, "reason": "no_longer_needed",
             "condition": None}
            for k, q in lines.items()
        ],
        "reason": None,
        "refund_amount": refund_amount,
        "currency": currency if refund_amount is not None else None,
        "warehouse": None,
    }


def settlement(
    transaction_type: str,
    amount: int,
    t: int,
    line_id: str | None = None,
    settlement_id: str = "st-1",
    order_id: str | None = "o-1",
    currency: str = "USD",
    provider: str = "stripe",
    eid: str | None = None,
) -> dict[str, Any]:
    event_id = eid or _eid("stl")
    return {
        **_envelope("stl", t, provider, order_id, event_id),
        "settlement_id": settlement_id,
        "settlement_line_id": line_id or f"{settlement_id}:{event_id}",
        "provider": provider,
        "transaction_type": transaction_type,
        "amount": amount,
        "currency": currency,
        "posted_time": t,
        "settlement_period_start": None,
        "settlement_period_end": None,
        "external_order_ref": None,
        "description": None,
    }


def kind_of(event: dict[str, Any]) -> str:
    if "shipment_id" in event:
        return "shipment"
    if "return_id" in event:
        return "return"
    if "settlement_line_id" in event:
        return "settlement"
    return "order"
