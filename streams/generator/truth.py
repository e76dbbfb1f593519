"""The ground truth the generator *intended*, derived from the stories' ledgers (never by
running ``tables.fulfillment``). Status names follow the conventions documented on
``FulfillmentState`` so the two can be compared field by field.

Time-dependent expectations (SLA breaches, absence-based mismatches) carry their deadline;
those whose deadline is after the final stream time go to ``not_yet_due`` instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streams.generator import thresholds as th
from streams.generator.story import OrderStory

FORMAT_VERSION = 1


@dataclass
class Truth:
    config: dict[str, Any]
    as_of: int  # latest event_time among the valid events
    stream_time: int  # as_of - ALLOWED_LATENESS_MS: deadlines at or before it are due
    orders: dict[str, dict[str, Any]]
    orphans: list[dict[str, Any]]
    mismatches: list[dict[str, Any]]
    sla_breaches: list[dict[str, Any]]
    not_yet_due: list[dict[str, Any]]
    dead_letters: dict[str, Any]
    counts: dict[str, Any]
    thresholds: dict[str, Any] = field(default_factory=lambda: thresholds_dict())
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def thresholds_dict() -> dict[str, Any]:
    """Every constant of ``thresholds`` (the truth file carries the numbers it assumed)."""
    return {name: getattr(th, name) for name in dir(th) if name.isupper()}


# --- per order ---


def _active(s: OrderStory) -> list[Any]:
    """Shipments that hold units: not cancelled before they left the building."""
    return [sh for sh in s.shipments if not (sh.cancelled and "shipped" not in sh.times)]


def _lines(s: OrderStory) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    live_returns = [rt for rt in s.returns if "rejected" not in rt.times]
    for line_id, ln in s.lines.items():
        effective = ln.ordered - ln.cancelled
        allocated = s.units("allocated", line_id)
        returned = sum(rt.lines.get(line_id, 0) for rt in live_returns if "received" in rt.times)
        refunded = sum(rt.lines.get(line_id, 0) for rt in live_returns if "refunded" in rt.times)
        out[line_id] = {
            "sku": ln.sku,
            "unit_price": ln.unit_price,
            "ordered": ln.ordered,
            "cancelled": ln.cancelled,
            "backordered": max(0, min(ln.backordered, effective - allocated)),
            "allocated": allocated,
            "picked": s.units("picked", line_id),
            "packed": s.units("packed", line_id),
            "shipped": s.units("shipped", line_id),
            "delivered": s.units("delivered", line_id),
            "returned": returned,
            "refunded": refunded,
            "substituted": min(ln.substituted, ln.ordered),
            "substituted_sku": ln.substituted_sku,
        }
    return out


def _first(times: list[int | None]) -> int | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _all_at(s: OrderStory, lines: dict[str, dict[str, Any]], status: str) -> int | None:
    """When every kept unit had reached ``status`` (None if it never did)."""
    kept = sum(ln["ordered"] - ln["cancelled"] for ln in lines.values())
    done = sum(min(ln[status], ln["ordered"] - ln["cancelled"]) for ln in lines.values())
    if kept == 0 or done < kept:
        return None
    return max(sh.times[status] for sh in _active(s) if status in sh.times)


def _fulfillment_status(lines: dict[str, dict[str, Any]], order_cancelled: bool) -> str:
    """Same precedence as FulfillmentState: progress of the kept units, capped per line."""
    ordered = sum(ln["ordered"] for ln in lines.values())
    cancelled = sum(ln["cancelled"] for ln in lines.values())
    if (cancelled >= ordered > 0) or (ordered == 0 and order_cancelled):
        return "cancelled"
    kept = ordered - cancelled

    def capped(key: str) -> int:
        return sum(min(ln[key], ln["ordered"] - ln["cancelled"]) for ln in lines.values())

    def raw(key: str) -> int:
        return sum(ln[key] for ln in lines.values())

    for key, full, partial in (("delivered", "delivered", "partially_delivered"),
                               ("shipped", "shipped", "partially_shipped")):
        if capped(key) >= kept:
            return full
        if raw(key):
            return partial
    for key in ("packed", "picked", "allocated"):
        if capped(key) >= kept:
            return key
    if raw("backordered"):
        return "backordered"
    if raw("allocated"):
        return "partially_allocated"
    return "partially_cancelled" if cancelled else "accepted"


def _returns_status(s: OrderStory, lines: dict[str, dict[str, Any]]) -> str:
    live = [rt for rt in s.returns if "rejected" not in rt.times]
    if not live:
        return "rejected" if s.returns else "none"
    returned = sum(ln["returned"] for ln in lines.values())
    shipped = sum(ln["shipped"] for ln in lines.values())
    if returned:
        return "returned" if shipped > 0 and returned >= shipped else "partially_returned"
    return "requested"


def _money(s: OrderStory) -> dict[str, int]:
    """Settled sums (magnitudes) of lines in the order's currency; other currencies are a
    currency_mismatch and do not count."""
    sums = {"charge": 0, "refund": 0, "fee": 0, "chargeback": 0}
    for m in s.money:
        if m.currency == s.currency and m.transaction_type in sums:
            sums[m.transaction_type] += abs(m.amount)
    return sums


def _financial_status(charged: int, refunded: int, expected: int) -> str:
    if refunded > 0:
        return "refunded" if refunded >= charged else "partially_refunded"
    if charged >= expected and (charged > 0 or expected == 0):
        return "settled"
    return "unsettled"


def order_truth(s: OrderStory, event_count: int) -> dict[str, Any]:
    lines = _lines(s)
    money = _money(s)
    expected = s.expected_charge()
    active = _active(s)
    live_returns = [rt for rt in s.returns if "rejected" not in rt.times]
    flags = set()
    if any(ln["shipped"] > ln["ordered"] for ln in lines.values()):
        flags.add("over_shipped")
    if any(m.currency != s.currency for m in s.money):
        flags.add("settlement_currency_mismatch")
    if money["chargeback"]:
        flags.add("chargeback")
    refund_times = [rt.times.get("refunded") for rt in live_returns]
    refund_times += [m.posted for m in s.money
                     if m.transaction_type == "refund" and m.currency == s.currency]
    return {
        "story": s.story,
        "channel": s.channel,
        "source_system": s.source_system,
        "provider": s.provider,
        "currency": s.currency,
        "service_level": s.service_level,
        "external_order_ref": s.external_order_ref,
        "fulfillment_status": _fulfillment_status(lines, s.cancelled_at is not None),
        "returns_status": _returns_status(s, lines),
        "financial_status": _financial_status(money["charge"], money["refund"], expected),
        "lines": lines,
        "order_total": s.order_total,
        "expected_charge": expected,
        "charged_amount": money["charge"],
        "refunded_amount": money["refund"],
        "fee_amount": money["fee"],
        "chargeback_amount": money["chargeback"],
        "expected_refund": sum(rt.refund_amount or 0 for rt in live_returns),
        "split": len(active) > 1,
        "shipment_ids": [sh.shipment_id for sh in s.shipments],
        "open_exceptions": [sh.shipment_id for sh in active
                            if sh.exceptions and sh.exceptions[-1][1] is None],
        "return_ids": [rt.return_id for rt in s.returns],
        "settlement_ids": sorted({m.settlement_id for m in s.money}),
        "flags": sorted(flags),
        "accepted_at": s.placed_at,
        "allocated_at": _first([sh.times.get("allocated") for sh in active]),
        "first_shipped_at": _first([sh.times.get("shipped") for sh in active]),
        "shipped_at": _all_at(s, lines, "shipped"),
        "delivered_at": _all_at(s, lines, "delivered"),
        "cancelled_at": s.cancelled_at,
        "returned_at": _first([rt.times.get("received") for rt in live_returns]),
        "refunded_at": _first(refund_times),
        "promised_ship_by": s.promised_ship_by,
        "promised_deliver_by": s.promised_deliver_by,
        "event_count": event_count,
    }


# --- SLA breaches ---


def _breach(rule: str, order_id: str | None, subject: str | None, deadline: int,
            resolved_at: int | None) -> dict[str, Any] | None:
    """A breach when the condition was not cleared by the deadline, else None."""
    if resolved_at is not None and resolved_at <= deadline:
        return None
    return {"rule": rule, "order_id": order_id, "subject": subject, "deadline": deadline,
            "resolved_at": resolved_at}


def _min_opt(*times: int | None) -> int | None:
    return _first(list(times))


def order_breaches(s: OrderStory, truth: dict[str, Any]) -> list[dict[str, Any]]:
    oid = s.order_id
    cancelled = s.cancelled_at if truth["fulfillment_status"] == "cancelled" else None
    found = [
        _breach("order_not_allocated", oid, oid, s.placed_at + th.ALLOCATION_SLA_MS,
                _min_opt(truth["allocated_at"], cancelled)),
        _breach("ship_by_breached", oid, oid, s.promised_ship_by,
                _min_opt(truth["shipped_at"], cancelled)),
        _breach("delivery_late", oid, oid, s.promised_deliver_by,
                _min_opt(truth["delivered_at"], cancelled)),
    ]
    for sh in _active(s):
        for start, end in sh.exceptions:
            assert start is not None
            found.append(_breach("shipment_exception_open", oid, sh.shipment_id,
                                 start + th.EXCEPTION_SLA_MS, end))
    for rt in s.returns:
        received = rt.times.get("received")
        if received is not None and "rejected" not in rt.times:
            found.append(_breach("refund_overdue", oid, rt.return_id,
                                 received + th.REFUND_SLA_MS, rt.times.get("refunded")))
    return [b for b in found if b is not None]


def orphan_breach(s: OrderStory, first_event_time: int) -> dict[str, Any]:
    return {"rule": "orphan_event", "order_id": s.order_id, "subject": s.order_id,
            "deadline": first_event_time + th.ORPHAN_GRACE_MS, "resolved_at": None}


def mismatches_of(s: OrderStory, order_id: str | None) -> list[dict[str, Any]]:
    return [{
        "order_id": order_id,
        "category": m.category,
        "expected": m.expected,
        "actual": m.actual,
        "difference": m.actual - m.expected,
        "currency": m.currency,
        "actual_currency": m.actual_currency or m.currency,
        "provider": s.provider,
        "settlement_line_ids": m.settlement_line_ids,
        "due_at": m.due_at,
    } for m in s.mismatches]
