"""Facts -> canonical ``FulfillmentState`` (the ``derive`` half of the fold).

Everything here is a pure function of the fact store, and the fact store is a function of the
set of distinct events, so the derived state does not depend on arrival order.

Quantity rules, per line:
  * shipment quantities are a funnel: a non-cancelled shipment at progress rank r counts its
    units in every stage up to r (a shipped shipment is also allocated, picked and packed);
  * a cancelled shipment releases its units unless it already shipped (then it is flagged);
  * cancelled = line cancellations (capped at ordered), or after an order cancel everything not
    already shipped; backordered = reported backorder not yet covered by allocation;
  * returned = units of non-rejected returns received (or refunded without receipt);
    refunded = units of refunded returns.

Status axes (first match wins):
  * fulfillment: cancelled (every unit cancelled), delivered, partially_delivered, shipped,
    partially_shipped, packed, picked, allocated (every owed unit at that stage or beyond),
    backordered, partially_allocated, partially_cancelled, accepted;
  * returns: none, rejected (every return rejected), returned (returned >= shipped units),
    partially_returned, requested;
  * financial, from settlement lines in the order's currency: refunded / partially_refunded
    once a refund settled (compared with charges), else settled when charges cover
    expected_charge, else unsettled.
"""

from __future__ import annotations

from typing import Any

from tables.fulfillment_facts import DELIVERED, RECEIVED, REFUNDED, SHIPPED, State
from tables.records import FulfillmentState

ALLOCATED = 1
PICKED = 2
PACKED = 3

# Fields of FulfillmentState that describe *which event* produced a version rather than the
# order itself; canonical_view drops them to compare states reached in different orders.
NON_CANONICAL_FIELDS = (
    "version",
    "caused_by_event_id",
    "caused_by_source_system",
    "correlation_id",
    "updated_at",
)


def _min_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


def derive(state: State) -> FulfillmentState | None:
    """The canonical state, or None while the order itself (placed/updated) is unseen."""
    snap = state["snap"]
    if snap is None:
        return None
    currency = snap["currency"]
    flags: set[str] = set()

    # --- shipments: per-line funnel [allocated, picked, packed, shipped, delivered] ---
    ship_units: dict[str, list[int]] = {}
    shipment_count = 0
    allocated_at = first_shipped_at = None
    last_first_shipped = last_delivered = None
    open_exceptions = []
    warehouses: set[str] = set()
    carriers: set[str] = set()
    tracking: set[str] = set()
    for shipment_id, sh in state["sh"].items():
        rank = sh["r"]
        if sh["c"] is not None:
            if rank < SHIPPED:
                continue  # cancelled before it left: its units are released
            flags.add("shipment_cancelled_after_ship")
        shipment_count += 1
        if rank >= ALLOCATED:
            for line_id, units in sh["l"].items():
                acc = ship_units.get(line_id)
                if acc is None:
                    acc = ship_units[line_id] = [0, 0, 0, 0, 0]
                acc[0] += units
                if rank >= PICKED:
                    acc[1] += units
                    if rank >= PACKED:
                        acc[2] += units
                        if rank >= SHIPPED:
                            acc[3] += units
                            if rank >= DELIVERED:
                                acc[4] += units
            # times[r] is the earliest event at rank r or beyond, never None for r <= rank.
            times = sh["t"]
            at = times[ALLOCATED]
            if allocated_at is None or at < allocated_at:
                allocated_at = at
            if rank >= SHIPPED:
                at = times[SHIPPED]
                if first_shipped_at is None or at < first_shipped_at:
                    first_shipped_at = at
                if last_first_shipped is None or at > last_first_shipped:
                    last_first_shipped = at
                if rank >= DELIVERED:
                    at = times[DELIVERED]
                    if last_delivered is None or at > last_delivered:
                        last_delivered = at
        exc = sh["x"]
        if exc is not None and (sh["p"] is None or exc[:2] > sh["p"]):
            open_exceptions.append({"shipment_id": shipment_id, "reason": exc[2], "since": exc[0]})
        if sh["wh"] is not None:
            warehouses.add(sh["wh"][2])
        if sh["car"] is not None:
            carriers.add(sh["car"][2])
        if sh["trk"] is not None:
            tracking.add(sh["trk"][2])
    open_exceptions.sort(key=lambda e: e["shipment_id"])

    # --- returns: per-line [requested (any non-rejected), returned, refunded] ---
    return_units: dict[str, list[int]] = {}
    returns_open = returns_rejected = 0
    returned_at = refunded_at = None
    expected_refund = 0
    for rt in state["rt"].values():
        rank = rt["r"]
        if rt["rj"] is not None and rank < REFUNDED:
            returns_rejected += 1
            continue
        returns_open += 1
        for line_id, units in rt["l"].items():
            acc = return_units.get(line_id)
            if acc is None:
                acc = return_units[line_id] = [0, 0, 0]
            acc[0] += units
            if rank >= RECEIVED:
                acc[1] += units
                if rank >= REFUNDED:
                    acc[2] += units
        times = rt["t"]
        if rank >= RECEIVED:
            returned_at = _min_opt(returned_at, times[RECEIVED])
        if rank >= REFUNDED:
            refunded_at = _min_opt(refunded_at, times[REFUNDED])
        amt = rt["amt"]
        if amt is not None and (amt[3] is None or amt[3] == currency):
            expected_refund += amt[2]

    # --- lines ---
    ordered_lines = snap["lines"]
    lc, bo, subq, subs = state["lc"], state["bo"], state["subq"], state["sub"]
    line_ids = set(ordered_lines)
    line_ids.update(ship_units, return_units, lc, bo, subq)
    order_cancelled = state["cancel_t"] is not None
    no_ship = (0, 0, 0, 0, 0)
    no_return = (0, 0, 0)
    lines = []
    tot_ordered = tot_cancelled = tot_backordered = 0
    eff_total = alloc_c = picked_c = packed_c = shipped_c = delivered_c = 0
    any_alloc = any_delivered = tot_returned = tot_shipped = 0
    full_value = kept_value = 0
    # Hot loop: plain comparisons instead of min()/max() calls, which cost a call each.
    for line_id in sorted(line_ids):
        known = ordered_lines.get(line_id)
        if known is None:
            flags.add("unknown_line")
            sku, ordered, price = None, 0, 0
        else:
            sku, ordered, price = known
        allocated, picked, packed, shipped, delivered = ship_units.get(line_id, no_ship)
        requested, returned, refunded = return_units.get(line_id, no_return)
        cancelled = lc.get(line_id, 0)
        if cancelled > ordered:
            cancelled = ordered
        if order_cancelled:
            # An order cancel takes whatever has not left the building.
            unshipped = ordered - shipped if shipped < ordered else 0
            if unshipped > cancelled:
                cancelled = unshipped
        effective = ordered - cancelled
        if shipped > ordered:
            flags.add("over_shipped")
        elif shipped > effective:
            flags.add("cancelled_units_shipped")
        if allocated > effective and shipped <= effective:
            # Units held in a warehouse beyond what is still owed, typically a cancel the
            # WMS has not processed yet: someone has to release that stock.
            flags.add("over_allocated")
        if requested > ordered or returned > ordered:
            flags.add("over_returned")
        backordered = bo.get(line_id, 0)
        if backordered:
            uncovered = effective - allocated
            if backordered > uncovered:
                backordered = uncovered if uncovered > 0 else 0
        substituted = subq.get(line_id, 0)
        if substituted > ordered:
            substituted = ordered
        sub = subs.get(line_id)
        lines.append(
            {
                "line_id": line_id,
                "sku": sku,
                "unit_price": price,
                "ordered": ordered,
                "cancelled": cancelled,
                "backordered": backordered,
                "allocated": allocated,
                "picked": picked,
                "packed": packed,
                "shipped": shipped,
                "delivered": delivered,
                "returned": returned,
                "refunded": refunded,
                "substituted_sku": sub[2] if sub is not None else None,
                "substituted": substituted,
            }
        )
        tot_ordered += ordered
        tot_cancelled += cancelled
        tot_backordered += backordered
        eff_total += effective
        # Capped per line so an over-shipped line cannot hide another line's shortfall.
        alloc_c += allocated if allocated < effective else effective
        picked_c += picked if picked < effective else effective
        packed_c += packed if packed < effective else effective
        shipped_c += shipped if shipped < effective else effective
        delivered_c += delivered if delivered < effective else effective
        any_alloc += allocated
        any_delivered += delivered
        tot_shipped += shipped
        tot_returned += returned
        full_value += ordered * price
        kept_value += effective * price

    # --- fulfillment axis ---
    all_cancelled = (tot_cancelled >= tot_ordered > 0) or (tot_ordered == 0 and order_cancelled)
    shipped_at = delivered_at = None
    if all_cancelled:
        fulfillment = "cancelled"
    elif eff_total > 0 and delivered_c >= eff_total:
        fulfillment = "delivered"
    elif any_delivered:
        fulfillment = "partially_delivered"
    elif eff_total > 0 and shipped_c >= eff_total:
        fulfillment = "shipped"
    elif tot_shipped:
        fulfillment = "partially_shipped"
    elif eff_total > 0 and packed_c >= eff_total:
        fulfillment = "packed"
    elif eff_total > 0 and picked_c >= eff_total:
        fulfillment = "picked"
    elif eff_total > 0 and alloc_c >= eff_total:
        fulfillment = "allocated"
    elif tot_backordered:
        fulfillment = "backordered"
    elif any_alloc:
        fulfillment = "partially_allocated"
    elif tot_cancelled:
        fulfillment = "partially_cancelled"
    else:
        fulfillment = "accepted"
    if eff_total > 0 and shipped_c >= eff_total:
        shipped_at = last_first_shipped
        if delivered_c >= eff_total:
            delivered_at = last_delivered
    cancelled_at = None
    if order_cancelled:
        cancelled_at = state["cancel_t"]
    elif all_cancelled:
        cancelled_at = state["lc_t"]

    # --- returns axis ---
    if returns_open == 0:
        returns_status = "rejected" if returns_rejected else "none"
    elif tot_returned > 0:
        returns_status = (
            "returned" if tot_shipped > 0 and tot_returned >= tot_shipped else "partially_returned"
        )
    else:
        returns_status = "requested"

    # --- money ---
    tot = state["tot"]
    order_total = tot[6] if tot is not None else full_value
    if all_cancelled:
        expected_charge = 0
    elif tot_cancelled == 0 or full_value == 0:
        expected_charge = order_total
    else:
        # Pro-rate by kept merchandise value; integer floor keeps money exact and stable.
        expected_charge = order_total * kept_value // full_value
    charged = refunded_amount = fees = chargebacks = 0
    settlement_ids: set[str] = set()
    for rec in state["st"].values():
        kind, amount, line_currency, posted = rec[2], rec[3], rec[4], rec[5]
        settlement_ids.add(rec[7])
        if line_currency != currency:
            flags.add("settlement_currency_mismatch")
            continue
        if kind == "charge":
            charged += amount
        elif kind == "refund":
            refunded_amount += abs(amount)
            refunded_at = _min_opt(refunded_at, posted)
        elif kind == "fee":
            fees += abs(amount)
        elif kind == "chargeback":
            chargebacks += abs(amount)
            flags.add("chargeback")
    if refunded_amount > 0:
        financial = "refunded" if refunded_amount >= charged else "partially_refunded"
    elif charged >= expected_charge and (charged > 0 or expected_charge == 0):
        financial = "settled"
    else:
        financial = "unsettled"

    last = state["last"] or [None, None, None]
    accepted_at = state["placed_t"] if state["placed_t"] is not None else state["updated_t"]
    fs: dict[str, Any] = {
        "order_id": state["order_id"],
        "version": state["v"],
        "caused_by_event_id": last[0] or "",
        "caused_by_source_system": last[1] or "",
        "correlation_id": last[2] or "",
        "channel": snap["channel"] or "",
        "customer_ref": snap["customer_ref"],
        "external_order_ref": snap["ext_ref"],
        "currency": currency,
        "lines": lines,
        "fulfillment_status": fulfillment,
        "returns_status": returns_status,
        "financial_status": financial,
        "reconciled": False,  # set by tables.order_pipeline, which knows the settlements
        "split": shipment_count > 1,
        "shipment_count": shipment_count,
        "open_exceptions": open_exceptions,
        "flags": sorted(flags),
        "accepted_at": accepted_at,
        "allocated_at": allocated_at,
        "first_shipped_at": first_shipped_at,
        "shipped_at": shipped_at,
        "delivered_at": delivered_at,
        "cancelled_at": cancelled_at,
        "returned_at": returned_at,
        "refunded_at": refunded_at,
        "promised_ship_by": snap["psb"],
        "promised_deliver_by": snap["pdb"],
        "order_total": order_total,
        "expected_charge": expected_charge,
        "charged_amount": charged,
        "refunded_amount": refunded_amount,
        "fee_amount": fees,
        "chargeback_amount": chargebacks,
        "expected_refund": expected_refund,
        "settlement_ids": sorted(settlement_ids),
        "warehouses": sorted(warehouses),
        "carriers": sorted(carriers),
        "tracking_numbers": sorted(tracking),
        "source_systems": sorted(state["src"]),
        "updated_at": state["tmax"],
    }
    return fs  # type: ignore[return-value]


def canonical_view(fs: FulfillmentState | dict[str, Any]) -> dict[str, Any]:
    """``fs`` without the fields that depend on which event arrived last."""
    return {k: v for k, v in fs.items() if k not in NON_CANONICAL_FIELDS}
