"""What the reconciliation rules read: an order's money view, its settlement lines, its refunds.

The rules work on these small frozen records rather than on raw events so they can be fed
either from the fold (``inputs_from_fold``: the fact store already dedupes settlement lines by
``settlement_line_id`` and keeps per-return refund facts, so nothing is stored twice) or from
decoded events directly (``settlement_line``), e.g. for orphan lines that have no fold state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from tables.fulfillment_derive import derive
from tables.fulfillment_facts import RETURN_RANK, State
from tables.money import allocate, prorate
from tables.reconciliation_config import DEFAULT_CONFIG, ReconciliationConfig

__all__ = [
    "OrderLineMoney",
    "OrderMoney",
    "ReconciliationInput",
    "ReturnRefund",
    "SettlementLine",
    "dedupe_lines",
    "expected_charge",
    "inputs_from_fold",
    "order_money",
    "settlement_line",
]

_APPROVED = RETURN_RANK["approved"]
_REFUNDED = RETURN_RANK["refunded"]


# Value objects built anew for every evaluation of an order are plain slots dataclasses, not
# frozen ones: a frozen dataclass sets each field through object.__setattr__, which made
# their construction ~3x dearer (~7% of the replay's fold). Nothing mutates them.
@dataclass(slots=True)
class OrderLineMoney:
    line_id: str
    unit_price: int
    ordered: int
    cancelled: int


@dataclass(slots=True)
class OrderMoney:
    """The money side of one known order, in ``currency`` minor units.

    ``tax``/``shipping``/``discounts`` are the order's totals breakdown, or None when only the
    total is known; whatever part of ``total`` they do not explain is spread like them.
    """

    order_id: str
    currency: str
    total: int
    lines: tuple[OrderLineMoney, ...]
    tax: int | None = None
    shipping: int | None = None
    discounts: int | None = None
    taxes_included: bool = False
    fully_cancelled: bool = False
    first_shipped_at: int | None = None  # first unit shipped: the settlement lag starts here
    shipped_at: int | None = None  # every non-cancelled unit shipped
    shipment_count: int = 0
    source_systems: tuple[str, ...] = ()
    correlation_id: str = ""


@dataclass(slots=True)
class SettlementLine:
    settlement_line_id: str
    settlement_id: str
    provider: str
    transaction_type: str
    amount: int  # signed as the provider reports it
    currency: str
    posted_time: int
    event_time: int
    order_id: str | None = None
    correlation_id: str = ""
    description: str | None = None


@dataclass(slots=True)
class ReturnRefund:
    """A non-rejected return that was approved, with the refund the returns platform promised.

    ``amount`` is None while no refund amount is known. ``refunded_at`` is when the platform
    issued the refund; its settlement is due ``refund_lag_ms`` later.
    """

    return_id: str
    amount: int | None
    currency: str | None
    approved_at: int | None
    refunded_at: int | None


class ReconciliationInput(NamedTuple):
    order_id: str
    order: OrderMoney | None  # None while the order itself is unknown
    settlements: tuple[SettlementLine, ...]
    refunds: tuple[ReturnRefund, ...]


def settlement_line(event: Mapping[str, Any]) -> SettlementLine:
    """A decoded ``SettlementEvent`` as a ``SettlementLine``."""
    return SettlementLine(
        settlement_line_id=event["settlement_line_id"],
        settlement_id=event["settlement_id"],
        provider=event.get("provider") or "unknown",
        transaction_type=event.get("transaction_type") or "unknown",
        amount=event["amount"],
        currency=event["currency"],
        posted_time=event["posted_time"],
        event_time=event["event_time"],
        order_id=event.get("order_id"),
        correlation_id=event.get("correlation_id") or "",
        description=event.get("description"),
    )


def _version_key(line: SettlementLine) -> tuple[Any, ...]:
    return (
        line.event_time,
        line.posted_time,
        line.amount,
        line.currency,
        line.transaction_type,
        line.settlement_id,
        line.provider,
        line.description or "",
        line.correlation_id,
    )


def dedupe_lines(lines: Iterable[SettlementLine]) -> tuple[SettlementLine, ...]:
    """One line per ``settlement_line_id``, sorted by (posted_time, id).

    A provider re-sending a settlement report must not double-count: the id is the identity.
    The latest version (event_time, then posted_time, then content) wins whatever the order.
    """
    latest: dict[str, SettlementLine] = {}
    for line in lines:
        seen = latest.get(line.settlement_line_id)
        if seen is None or _version_key(line) > _version_key(seen):
            latest[line.settlement_line_id] = line
    return tuple(sorted(latest.values(), key=lambda ln: (ln.posted_time, ln.settlement_line_id)))


def _infer_taxes_included(totals: Mapping[str, int]) -> bool:
    # The fold keeps the totals without the taxes_included flag; the totals themselves tell:
    # VAT-inclusive prices give total = subtotal - discounts + shipping.
    merchandise = totals["subtotal"] - totals["discounts"] + totals["shipping"]
    total = totals["total"]
    return total == merchandise and total != merchandise + totals["tax"]


def order_money(fs: Mapping[str, Any], totals: Mapping[str, Any] | None = None) -> OrderMoney:
    """``OrderMoney`` from a ``FulfillmentState`` dict and, if known, its ``OrderTotals``."""
    lines = tuple(
        OrderLineMoney(ln["line_id"], ln["unit_price"], ln["ordered"], ln["cancelled"])
        for ln in fs["lines"]
        if ln["ordered"] > 0
    )
    tax = shipping = discounts = None
    taxes_included = False
    if totals is not None:
        tax, shipping, discounts = totals["tax"], totals["shipping"], totals["discounts"]
        taxes_included = totals.get("taxes_included")
        if taxes_included is None:
            taxes_included = _infer_taxes_included(totals)
    return OrderMoney(
        order_id=fs["order_id"],
        currency=fs["currency"],
        total=fs["order_total"],
        lines=lines,
        tax=tax,
        shipping=shipping,
        discounts=discounts,
        taxes_included=bool(taxes_included),
        fully_cancelled=fs["fulfillment_status"] == "cancelled",
        first_shipped_at=fs["first_shipped_at"],
        shipped_at=fs["shipped_at"],
        shipment_count=fs["shipment_count"],
        source_systems=tuple(fs["source_systems"]),
        correlation_id=fs["correlation_id"],
    )


def _refunds_from_facts(state: State) -> tuple[ReturnRefund, ...]:
    refunds = []
    for return_id in sorted(state["rt"]):
        rt = state["rt"][return_id]
        rank = rt["r"]
        if rank < _APPROVED or (rt["rj"] is not None and rank < _REFUNDED):
            continue  # only requested, or rejected before any refund
        amt = rt["amt"]
        refunds.append(
            ReturnRefund(
                return_id=return_id,
                amount=None if amt is None else amt[2],
                currency=None if amt is None else amt[3],
                approved_at=rt["t"][_APPROVED],
                refunded_at=rt["t"][_REFUNDED] if rank >= _REFUNDED else None,
            )
        )
    return tuple(refunds)


def _settlements_from_facts(state: State, correlation_id: str) -> tuple[SettlementLine, ...]:
    # st: {settlement_line_id: [t, id, type, amount, currency, posted, provider, settlement]},
    # already deduplicated by line id. The facts keep neither description nor correlation id.
    order_id: str | None = state["order_id"]
    if order_id in state["st"]:
        # Lines with no order id are keyed by their settlement_line_id (see the producer), so
        # a key equal to one of its own line ids is no order at all.
        order_id = None
    lines = [
        SettlementLine(
            settlement_line_id=line_id,
            settlement_id=rec[7],
            provider=rec[6],
            transaction_type=rec[2],
            amount=rec[3],
            currency=rec[4],
            posted_time=rec[5],
            event_time=rec[0],
            order_id=order_id,
            correlation_id=correlation_id,
        )
        for line_id, rec in state["st"].items()
    ]
    lines.sort(key=lambda ln: (ln.posted_time, ln.settlement_line_id))
    return tuple(lines)


def inputs_from_fold(state: State, fs: Mapping[str, Any] | None = None) -> ReconciliationInput:
    """Everything the rules need for one order, read from its fold state (``derive`` if no fs)."""
    view = fs if fs is not None else derive(state)
    order = None
    if view is not None:
        tot = state["tot"]  # [t, id, subtotal, discounts, tax, shipping, total] | None
        totals = None
        if tot is not None:
            keys = ("subtotal", "discounts", "tax", "shipping", "total")
            totals = dict(zip(keys, tot[2:7], strict=True))
        order = order_money(view, totals)
    last = state.get("last")
    correlation_id = order.correlation_id if order else (last[2] if last else "") or ""
    return ReconciliationInput(
        order_id=state["order_id"],
        order=order,
        settlements=_settlements_from_facts(state, correlation_id),
        refunds=_refunds_from_facts(state),
    )


def _cancelled_share(component: int, lines: tuple[OrderLineMoney, ...]) -> int:
    """The part of an order-level ``component`` (tax, shipping, -discounts) cancelled units carry.

    Spread over lines by merchandise value (by units if every price is 0), then each line's
    share split between its cancelled and kept units; both steps use ``allocate`` so the
    shares of all lines add up to the component exactly.
    """
    if component == 0:
        return 0
    weights = [ln.unit_price * ln.ordered for ln in lines]
    if sum(weights) == 0:
        weights = [ln.ordered for ln in lines]
        if sum(weights) == 0:
            return 0
    cancelled = 0
    for line, share in zip(lines, allocate(component, weights), strict=True):
        if line.cancelled:
            cancelled += prorate(share, min(line.cancelled, line.ordered), line.ordered)
    return cancelled


def expected_charge(order: OrderMoney, config: ReconciliationConfig = DEFAULT_CONFIG) -> int:
    """Order total minus the value of cancelled units, including their tax/shipping share."""
    if order.fully_cancelled:
        return 0
    lines = order.lines
    full_value = sum(ln.unit_price * ln.ordered for ln in lines)
    cancelled_value = sum(ln.unit_price * min(ln.cancelled, ln.ordered) for ln in lines)
    if not any(ln.cancelled for ln in lines):
        return order.total
    if all(ln.cancelled >= ln.ordered for ln in lines):
        return 0
    if config.proration == "floor":
        if full_value == 0:
            return order.total
        return order.total * (full_value - cancelled_value) // full_value
    # The non-merchandise part of the total, split into the components the totals name, plus
    # whatever they leave unexplained (or all of it when no breakdown is known), so that
    # cancelling every unit would cancel exactly the whole total.
    components: list[int] = []
    if order.tax is not None and not order.taxes_included:
        components.append(order.tax)
    if order.shipping is not None:
        components.append(order.shipping)
    if order.discounts is not None:
        components.append(-order.discounts)
    components.append(order.total - full_value - sum(components))
    cancelled = cancelled_value + sum(_cancelled_share(c, lines) for c in components)
    return order.total - cancelled
