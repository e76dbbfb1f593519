"""Building blocks the stories are made of: a shipment's life, a return's life, the capture."""

from __future__ import annotations

from dataclasses import dataclass

from streams.generator import catalog
from streams.generator.story import OrderStory, ReturnFacts, ShipmentFacts
from streams.generator.thresholds import DAY_MS, HOUR_MS, MINUTE_MS


@dataclass(frozen=True)
class Exception_:
    """A carrier exception during transit; ``recover_after`` None means it never recovers."""

    reason: str
    recover_after: int | None


def between(s: OrderStory, low: int, high: int) -> int:
    return s.rng.randint(low, high)


def fulfil(s: OrderStory, lines: dict[str, int], alloc_at: int, *, ship_at: int | None = None,
           transit: int | None = None, exception: Exception_ | None = None,
           until: str = "delivered") -> ShipmentFacts:
    """One shipment from WMS allocation to carrier delivery (or to ``until``)."""
    sh = s.new_shipment(lines)
    s.ship_status(sh, "created", alloc_at - between(s, MINUTE_MS, 4 * MINUTE_MS))
    s.ship_status(sh, "allocated", alloc_at)
    if until == "allocated":
        return sh
    if ship_at is None:
        picked = alloc_at + between(s, 30 * MINUTE_MS, 4 * HOUR_MS)
        packed = picked + between(s, 10 * MINUTE_MS, 60 * MINUTE_MS)
        ship_at = packed + between(s, 30 * MINUTE_MS, 3 * HOUR_MS)
    else:  # a late shipment: the warehouse worked it just before it left
        packed = max(alloc_at + 2 * MINUTE_MS, ship_at - between(s, 30 * MINUTE_MS, 3 * HOUR_MS))
        picked = max(alloc_at + MINUTE_MS, packed - between(s, 10 * MINUTE_MS, 60 * MINUTE_MS))
        packed = max(packed, picked + MINUTE_MS)
    _, _, low_h, high_h = catalog.SERVICE_LEVELS[s.service_level]
    if transit is None:
        transit = between(s, low_h * HOUR_MS, high_h * HOUR_MS)
    s.ship_status(sh, "picked", picked)
    s.ship_status(sh, "packed", packed)
    s.ship_status(sh, "shipped", ship_at, eta=ship_at + high_h * HOUR_MS)
    if until == "shipped":
        return sh
    scan = ship_at + between(s, HOUR_MS, 6 * HOUR_MS)
    s.ship_status(sh, "in_transit", scan)
    delivered = ship_at + transit
    if exception is not None:
        hit = scan + between(s, 2 * HOUR_MS, 20 * HOUR_MS)
        s.ship_status(sh, "exception", hit, exception_reason=exception.reason)
        if exception.recover_after is None:
            return sh  # lost: the carrier never scans it again
        scan = hit + exception.recover_after
        s.ship_status(sh, "in_transit", scan)
        delivered = max(delivered, scan + between(s, 4 * HOUR_MS, 24 * HOUR_MS))
    out = max(scan + MINUTE_MS, delivered - between(s, 2 * HOUR_MS, 8 * HOUR_MS))
    s.ship_status(sh, "out_for_delivery", out)
    s.ship_status(sh, "delivered", max(out + MINUTE_MS, delivered))
    return sh


def all_units(s: OrderStory) -> dict[str, int]:
    """Every unit still to ship (ordered minus cancelled), by line."""
    return {ln.line_id: ln.ordered - ln.cancelled for ln in s.lines.values()
            if ln.ordered > ln.cancelled}


def split_units(s: OrderStory) -> tuple[dict[str, int], dict[str, int]]:
    """Two non-empty parts of the order: by line when there are several, else by units."""
    units = all_units(s)
    ids = list(units)
    if len(ids) >= 2:
        cut = s.rng.randint(1, len(ids) - 1)
        return ({i: units[i] for i in ids[:cut]}, {i: units[i] for i in ids[cut:]})
    only = ids[0]
    first = s.rng.randint(1, units[only] - 1)
    return {only: first}, {only: units[only] - first}


def allocation_time(s: OrderStory) -> int:
    return s.placed_at + between(s, 5 * MINUTE_MS, 60 * MINUTE_MS)


def shipped_at(sh: ShipmentFacts) -> int:
    return sh.times["shipped"]


def capture(s: OrderStory, shipments: list[ShipmentFacts], amount: int | None = None,
            *, fee_factor: float = 1.0, currency: str | None = None) -> int:
    """Settle the charge (+ fee). Amazon charges per shipment, the others capture the whole
    order on the first shipment. Returns the amount charged."""
    amount = s.expected_charge() if amount is None else amount
    shipped = sorted((sh for sh in shipments if "shipped" in sh.times), key=shipped_at)
    if s.provider == "amazon" and len(shipped) > 1:
        values = [sum(s.lines[i].unit_price * q for i, q in sh.lines.items()) for sh in shipped]
        whole = sum(values)
        parts = [amount * v // whole for v in values[:-1]]
        parts.append(amount - sum(parts))  # the last shipment takes the rounding remainder
        for sh, part in zip(shipped, parts, strict=True):
            s.charge(part, shipped_at(sh), fee_factor=fee_factor, currency=currency)
    else:
        s.charge(amount, shipped_at(shipped[0]), fee_factor=fee_factor, currency=currency)
    return amount


def refund_amount(s: OrderStory, units: dict[str, int], charged: int) -> int:
    """Money back for ``units``: all of the charge when every kept unit comes back, else the
    units' share of the order total (floor, like the charge pro-rating)."""
    kept = {ln.line_id: ln.ordered - ln.cancelled for ln in s.lines.values()}
    if all(units.get(i, 0) >= q for i, q in kept.items()):
        return charged
    value = sum(s.lines[i].unit_price * q for i, q in units.items())
    return s.order_total * value // s.subtotal


def pick_return_units(s: OrderStory, full: bool) -> dict[str, int]:
    units = all_units(s)
    if full:
        return units
    total = sum(units.values())
    take = s.rng.randint(1, max(1, total - 1))
    picked: dict[str, int] = {}
    for line_id in s.rng.sample(list(units), len(units)):
        n = min(take, units[line_id])
        if n:
            picked[line_id] = n
            take -= n
    return picked


def return_flow(s: OrderStory, units: dict[str, int], after: int, charged: int, *,
                refund: bool = True, reject: bool = False,
                settle: bool = True, settle_delta: int = 0) -> ReturnFacts:
    """requested -> approved -> received -> (inspected) -> refunded, refund settled after lag.

    ``settle_delta`` shifts the settled refund away from the promised one (refund_mismatch).
    """
    rt = s.new_return(units)
    t = after + between(s, 2 * DAY_MS, 10 * DAY_MS)
    s.return_status(rt, "requested", t)
    if reject:
        s.return_status(rt, "rejected", t + between(s, 6 * HOUR_MS, 2 * DAY_MS))
        return rt
    t += between(s, HOUR_MS, DAY_MS)
    s.return_status(rt, "approved", t)
    t += between(s, 2 * DAY_MS, 7 * DAY_MS)
    s.return_status(rt, "received", t)
    if s.rng.random() < 0.5:
        t += between(s, 2 * HOUR_MS, DAY_MS)
        s.return_status(rt, "inspected", t)
    if not refund:
        return rt
    t += between(s, HOUR_MS, 36 * HOUR_MS)  # within REFUND_SLA_MS of receipt
    amount = refund_amount(s, units, charged)
    s.return_status(rt, "refunded", t, refund_amount=amount)
    if settle:
        s.settle("refund", -(amount + settle_delta), t)
    return rt
