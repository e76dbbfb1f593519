"""The per-order stories. Each takes a fresh ``OrderStory`` and tells it in event-time order
(within each shipment / return), declaring the reconciliation mismatch it means to cause.

SLA breaches are not declared here: ``truth`` derives them from the recorded times, so a story
that accidentally ships late (e.g. a long backorder) is still described correctly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams.generator import catalog
from streams.generator.flows import (
    Exception_,
    all_units,
    allocation_time,
    between,
    capture,
    fulfil,
    pick_return_units,
    refund_amount,
    return_flow,
    shipped_at,
    split_units,
)
from streams.generator.story import OrderStory, ShipmentFacts
from streams.generator.thresholds import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    ORPHAN_GRACE_MS,
    REFUND_SETTLEMENT_GRACE_MS,
    SETTLEMENT_GRACE_MS,
    band_fee,
)

Teller = Callable[[OrderStory], None]


@dataclass(frozen=True)
class Scenario:
    tell: Teller
    min_units: int = 1  # stories that split or partially cancel need at least two units
    doc: str = ""


def _shipped(s: OrderStory, **kw: object) -> ShipmentFacts:
    """Place the order and ship all of it in one shipment."""
    s.place()
    return fulfil(s, all_units(s), allocation_time(s), **kw)  # type: ignore[arg-type]


def happy(s: OrderStory) -> None:
    sh = _shipped(s)
    capture(s, [sh])


def split(s: OrderStory) -> None:
    s.place()
    first, second = split_units(s)
    alloc = allocation_time(s)
    sh1 = fulfil(s, first, alloc)
    sh2 = fulfil(s, second, alloc + between(s, 30 * MINUTE_MS, 8 * HOUR_MS))
    capture(s, [sh1, sh2])


def partial_cancel(s: OrderStory) -> None:
    s.place()
    line = s.rng.choice([ln for ln in s.lines.values()])
    if line.ordered >= 2 and (len(s.lines) == 1 or s.rng.random() < 0.5):
        qty = s.rng.randint(1, line.ordered - 1)
    elif len(s.lines) >= 2:
        qty = line.ordered
    else:
        qty = 1
    cancel_at = s.placed_at + between(s, 2 * MINUTE_MS, 40 * MINUTE_MS)
    s.cancel_line(cancel_at, line.line_id, qty, reason=s.rng.choice(("customer", "inventory")))
    sh = fulfil(s, all_units(s), cancel_at + between(s, 5 * MINUTE_MS, 30 * MINUTE_MS))
    capture(s, [sh])


def cancel(s: OrderStory) -> None:
    """Cancelled after allocation: the WMS releases the shipment, nothing is captured."""
    sh = _shipped(s, until="allocated")
    t = sh.times["allocated"] + between(s, 30 * MINUTE_MS, 6 * HOUR_MS)
    s.cancel_order(t, s.rng.choice(catalog.CANCEL_REASONS))
    s.ship_status(sh, "cancelled", t + between(s, MINUTE_MS, 20 * MINUTE_MS))


def backorder(s: OrderStory) -> None:
    """One line out of stock; the order ships complete once it is allocated (or never)."""
    s.place()
    line = s.rng.choice(list(s.lines.values()))
    s.backorder(s.placed_at + between(s, MINUTE_MS, 10 * MINUTE_MS), line.line_id, line.ordered)
    roll = s.rng.random()
    if roll < 0.4:
        wait = between(s, 2 * HOUR_MS, 12 * HOUR_MS)
    elif roll < 0.75:
        wait = between(s, 30 * HOUR_MS, 96 * HOUR_MS)
    else:
        return  # never restocked: stays backordered, order_not_allocated fires
    sh = fulfil(s, all_units(s), s.placed_at + wait)
    capture(s, [sh])


def substitution(s: OrderStory) -> None:
    s.place()
    line = s.rng.choice(list(s.lines.values()))
    sub_sku, sub_price = catalog.SUBSTITUTES.get(line.sku, (f"{line.sku}-ALT", None))
    alloc = allocation_time(s)
    s.substitute(alloc - between(s, MINUTE_MS, 4 * MINUTE_MS), line.line_id, line.ordered,
                 sub_sku, sub_price)
    sh = fulfil(s, all_units(s), alloc)
    capture(s, [sh])


def exception(s: OrderStory) -> None:
    roll = s.rng.random()
    if roll < 0.4:
        recover: int | None = between(s, 2 * HOUR_MS, 12 * HOUR_MS)  # within EXCEPTION_SLA_MS
    elif roll < 0.7:
        recover = between(s, 30 * HOUR_MS, 72 * HOUR_MS)  # breaches, then recovers
    else:
        recover = None  # lost in transit
    reason = "lost" if recover is None else s.rng.choice(catalog.EXCEPTION_REASONS[:-1])
    sh = _shipped(s, exception=Exception_(reason, recover))
    capture(s, [sh])


def _returned(s: OrderStory, full: bool, **kw: object) -> None:
    sh = _shipped(s)
    charged = capture(s, [sh])
    units = pick_return_units(s, full)
    return_flow(s, units, sh.times["delivered"], charged, **kw)  # type: ignore[arg-type]


def return_partial(s: OrderStory) -> None:
    _returned(s, full=False)


def return_full(s: OrderStory) -> None:
    _returned(s, full=True)


def return_rejected(s: OrderStory) -> None:
    _returned(s, full=s.rng.random() < 0.5, reject=True)


def late_delivery(s: OrderStory) -> None:
    s.place()
    alloc = allocation_time(s)
    ship_at = alloc + between(s, 2 * HOUR_MS, 6 * HOUR_MS)
    transit = s.promised_deliver_by - ship_at + between(s, 6 * HOUR_MS, 72 * HOUR_MS)
    sh = fulfil(s, all_units(s), alloc, ship_at=ship_at, transit=transit)
    capture(s, [sh])


def ship_late(s: OrderStory) -> None:
    sh = _shipped(s, ship_at=s.promised_ship_by + between(s, 2 * HOUR_MS, 30 * HOUR_MS))
    capture(s, [sh])


def short_payment(s: OrderStory) -> None:
    sh = _shipped(s)
    expected = s.expected_charge()
    actual = expected - max(1, expected * s.rng.randint(3, 20) // 100)
    capture(s, [sh], actual)
    charge = next(m for m in s.money if m.transaction_type == "charge")
    s.expect("amount_mismatch", expected, actual, charge.posted, [charge])


def duplicate_settlement(s: OrderStory) -> None:
    """The provider settles the same capture twice under two line ids (often two payouts)."""
    sh = _shipped(s)
    amount = capture(s, [sh])
    first = next(m for m in s.money if m.transaction_type == "charge")
    again, _ = s.charge(amount, shipped_at(sh) + between(s, HOUR_MS, 2 * DAY_MS))
    s.expect("duplicate_settlement", amount, 2 * amount, max(first.posted, again.posted),
             [first, again])


def missing_refund(s: OrderStory) -> None:
    sh = _shipped(s)
    charged = capture(s, [sh])
    units = pick_return_units(s, full=s.rng.random() < 0.4)
    rt = return_flow(s, units, sh.times["delivered"], charged, settle=False)
    assert rt.refund_amount is not None
    s.expect("missing_refund", rt.refund_amount, 0,
             rt.times["refunded"] + REFUND_SETTLEMENT_GRACE_MS)


def refund_mismatch(s: OrderStory) -> None:
    sh = _shipped(s)
    charged = capture(s, [sh])
    units = pick_return_units(s, full=False)
    promised = refund_amount(s, units, charged)
    delta = s.rng.randint(50, 900)
    if promised > delta and s.rng.random() < 0.6:
        delta = -delta  # settled short more often than over
    rt = return_flow(s, units, sh.times["delivered"], charged, settle_delta=delta)
    assert rt.refund_amount is not None
    refund = s.money[-1]
    # A short refund might still be topped up: it is only due once the refund grace is over.
    due = refund.posted if delta > 0 else max(
        refund.posted, rt.times["refunded"] + REFUND_SETTLEMENT_GRACE_MS)
    s.expect("refund_mismatch", rt.refund_amount, -refund.amount, due, [refund])


def refund_overdue(s: OrderStory) -> None:
    sh = _shipped(s)
    charged = capture(s, [sh])
    return_flow(s, pick_return_units(s, full=False), sh.times["delivered"], charged,
                refund=False)


def refund_without_return(s: OrderStory) -> None:
    """A goodwill refund (appeasement) with no return behind it."""
    sh = _shipped(s)
    charged = capture(s, [sh])
    amount = max(100, charged * s.rng.randint(10, 30) // 100)
    refund = s.settle("refund", -amount, sh.times["delivered"] + between(s, DAY_MS, 10 * DAY_MS))
    s.expect("refund_without_return", 0, amount, refund.posted, [refund])


def currency_mismatch(s: OrderStory) -> None:
    """Settled in another currency (a provider account configured for the wrong market)."""
    sh = _shipped(s)
    expected = s.expected_charge()
    other = catalog.OTHER_CURRENCY[s.currency]
    converted = expected * s.rng.randint(80, 140) // 100
    capture(s, [sh], converted, currency=other)
    charge = next(m for m in s.money if m.transaction_type == "charge")
    s.expect("currency_mismatch", expected, converted, charge.posted, [charge],
             actual_currency=other)


def fee_anomaly(s: OrderStory) -> None:
    sh = _shipped(s)
    factor = s.rng.choice((2.5, 3.0, 4.0))
    amount = capture(s, [sh], fee_factor=factor)
    fee = next(m for m in s.money if m.transaction_type == "fee")
    s.expect("fee_anomaly", band_fee(s.provider, amount), -fee.amount, fee.posted, [fee])


def chargeback(s: OrderStory) -> None:
    sh = _shipped(s)
    amount = capture(s, [sh])
    line = s.settle("chargeback", -amount,
                    sh.times["delivered"] + between(s, 7 * DAY_MS, 21 * DAY_MS))
    s.expect("chargeback", 0, amount, line.posted, [line])


def unsettled(s: OrderStory) -> None:
    """Shipped and delivered, but the capture never shows up in any settlement."""
    sh = _shipped(s)
    s.expect("unsettled", s.expected_charge(), 0, shipped_at(sh) + SETTLEMENT_GRACE_MS)


def over_ship(s: OrderStory) -> None:
    """The warehouse packs one unit more than ordered on one line."""
    s.place()
    units = all_units(s)
    extra = s.rng.choice(list(units))
    units[extra] += 1
    sh = fulfil(s, units, allocation_time(s))
    capture(s, [sh])


def orphan(s: OrderStory) -> None:
    """Events for an order we never hear about: a settlement for an order id no store has, a
    settlement line the provider could not match at all (no order id), or a 3PL feed for an
    order of a store that is not integrated."""
    s.order_known = False
    roll = s.rng.random()
    t = s.placed_at
    if roll < 0.65:
        amount = s.expected_charge()
        line = s.settle("charge", amount, t, keyed=roll < 0.4)
        # The line waits ORPHAN_GRACE_MS for its order before it counts as an orphan.
        s.expect("orphan_settlement", 0, amount, line.posted + ORPHAN_GRACE_MS, [line])
    else:
        sh = fulfil(s, all_units(s), t, until="shipped")
        del sh  # the shipment feed stops at shipped; nobody follows up on it


SCENARIOS: dict[str, Scenario] = {
    "happy": Scenario(happy, doc="placed -> allocated -> ... -> delivered, charge + fee"),
    "split": Scenario(split, 2, "two warehouses, two shipment_ids"),
    "partial_cancel": Scenario(partial_cancel, 2, "line_cancelled before allocation"),
    "cancel": Scenario(cancel, doc="order cancelled after allocation, shipment cancelled"),
    "backorder": Scenario(backorder, doc="one line backordered, allocated hours/days later "
                          "or never"),
    "substitution": Scenario(substitution, doc="warehouse ships a substitute SKU"),
    "exception": Scenario(exception, doc="carrier exception, recovered fast/slow or lost"),
    "return_partial": Scenario(return_partial, 2, "some units returned and refunded"),
    "return_full": Scenario(return_full, doc="everything returned and refunded"),
    "return_rejected": Scenario(return_rejected, doc="return requested and rejected"),
    "late_delivery": Scenario(late_delivery, doc="delivered after promised_deliver_by"),
    "ship_late": Scenario(ship_late, doc="shipped after promised_ship_by"),
    "short_payment": Scenario(short_payment, doc="charge settled short (amount_mismatch)"),
    "duplicate_settlement": Scenario(duplicate_settlement, doc="same charge settled twice"),
    "missing_refund": Scenario(missing_refund, doc="return refunded, no refund settled"),
    "refund_mismatch": Scenario(refund_mismatch, 2, "refund settled for another amount"),
    "refund_overdue": Scenario(refund_overdue, 2, "return received, never refunded"),
    "refund_without_return": Scenario(refund_without_return, doc="goodwill refund"),
    "currency_mismatch": Scenario(currency_mismatch, doc="charge settled in another currency"),
    "fee_anomaly": Scenario(fee_anomaly, doc="fee 2.5-4x the provider band"),
    "chargeback": Scenario(chargeback, doc="dispute lost weeks after delivery"),
    "unsettled": Scenario(unsettled, doc="shipped, never settled"),
    "over_ship": Scenario(over_ship, doc="one unit more shipped than ordered"),
    "orphan": Scenario(orphan, doc="settlement or shipment for an unknown order id"),
}
