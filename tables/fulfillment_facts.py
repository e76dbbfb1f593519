"""Folding one event into the per-order fact store (the ``apply`` half of the fold).

The state keeps *facts*, not a running status: every field below is a commutative summary of
the set of distinct events seen (a min, a max by ``(event_time, event_id)``, a sum over
distinct events), so any arrival order of the same events leaves the same state apart from
``last`` (the event that arrived last) and the version bookkeeping ``v``/``vd``.
``tables.fulfillment_derive`` turns facts into the canonical ``FulfillmentState``.

The state is a JSON-compatible dict so the agent can keep it in a RocksDB table and its
changelog without a codec. Layout (short keys keep the changelog small)::

    order_id  str
    v         int                 version, bumped by ``step`` when the canonical view changes
    vd        str | None          digest of the last emitted canonical view
    ids       {event_id: 1}       every applied event (dedupe)
    last      [event_id, source_system, correlation_id] | None
    tmax      int | None          latest event_time seen
    src       {source_system: 1}
    snap      None until a placed/updated event is seen; then header fields of the latest
              placed/updated by (event_time, event_id) and lines of the latest one with lines:
              {k: [t, id], channel, customer_ref, ext_ref, currency, psb, pdb,
               lk: [t, id], lines: {line_id: [sku, quantity, unit_price]}}
    tot       [t, id, subtotal, discounts, tax, shipping, total] | None   latest totals
    placed_t / updated_t / cancel_t   min event_time of placed / updated / cancelled events
    lc_t      max event_time of line_cancelled events
    lc, bo, subq   {line_id: units}   summed over distinct line_cancelled/backordered/substituted
    sub       {line_id: [t, id, substituted_sku]}   latest substitution per line
    sh        {shipment_id: shipment facts, see _new_shipment}
    rt        {return_id: return facts, see _new_return}
    st        {settlement_line_id: [t, id, type, amount, currency, posted, provider, settlement]}
    tl        timeline, sorted [[t, id, kind, what, source_system, effect], ...], newest 100
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping
from typing import Any

State = dict[str, Any]
Event = Mapping[str, Any]

TIMELINE_LIMIT = 100

# Shipment progress; "exception" and "cancelled" are not progress (handled as flags).
SHIPMENT_RANK: dict[str, int] = {
    "created": 0,
    "allocated": 1,
    "picked": 2,
    "packed": 3,
    "shipped": 4,
    "in_transit": 5,
    "out_for_delivery": 6,
    "delivered": 7,
}
SHIPPED = SHIPMENT_RANK["shipped"]
DELIVERED = SHIPMENT_RANK["delivered"]

# Return progress; "rejected" is terminal unless the return was already refunded.
RETURN_RANK: dict[str, int] = {
    "requested": 0,
    "approved": 1,
    "received": 2,
    "inspected": 3,
    "refunded": 4,
}
RECEIVED = RETURN_RANK["received"]
REFUNDED = RETURN_RANK["refunded"]


def new_state(order_id: str) -> State:
    """An empty fact store for one order."""
    return {
        "order_id": order_id,
        "v": 0,
        "vd": None,
        "ids": {},
        "last": None,
        "tmax": None,
        "src": {},
        "snap": None,
        "tot": None,
        "placed_t": None,
        "updated_t": None,
        "cancel_t": None,
        "lc_t": None,
        "lc": {},
        "bo": {},
        "subq": {},
        "sub": {},
        "sh": {},
        "rt": {},
        "st": {},
        "tl": [],
    }


def _new_shipment() -> dict[str, Any]:
    return {
        "r": -1,  # most advanced progress rank seen
        "t": [None] * (DELIVERED + 1),  # t[r]: min event_time seen at progress rank >= r
        "lk": None,  # [rank, t, id] of the event whose lines count (most advanced wins)
        "l": {},  # {line_id: units}
        "x": None,  # latest exception [t, id, reason]
        "p": None,  # latest progress event [t, id]; clears an earlier exception
        "c": None,  # min event_time of a cancelled event
        "wh": None,  # [t, id, warehouse] latest non-null, likewise carrier and tracking
        "car": None,
        "trk": None,
    }


def _new_return() -> dict[str, Any]:
    return {
        "r": -1,
        "t": [None] * (REFUNDED + 1),  # t[r]: min event_time seen at rank >= r
        "lk": None,
        "l": {},
        "rj": None,  # min event_time of a rejected event
        "amt": None,  # latest non-null refund [t, id, amount, currency]
    }


def _min(current: int | None, t: int) -> int:
    return t if current is None or t < current else current


def _line_units(lines: Any) -> dict[str, int]:
    units: dict[str, int] = {}
    for line in lines:
        line_id = line["line_id"]
        units[line_id] = units.get(line_id, 0) + line["quantity"]
    return units


def _affected(line: Mapping[str, Any]) -> int:
    # Null quantity_affected means the event concerns the whole line.
    affected = line.get("quantity_affected")
    return line["quantity"] if affected is None else affected


def _add_units(target: dict[str, int], line_id: str, units: int) -> None:
    target[line_id] = target.get(line_id, 0) + units


def _lower_times(times: list[Any], rank: int, t: int) -> bool:
    """Record an event at ``rank``: times[r] is the earliest event_time at rank r or beyond."""
    changed = False
    for r in range(rank, -1, -1):
        seen = times[r]
        if seen is None or t < seen:
            times[r] = t
            changed = True
        else:
            break  # times is non-decreasing in r, so lower ranks are already earlier
    return changed


def _apply_order(state: State, t: int, eid: str, event: Event) -> tuple[str, bool]:
    kind = event["type"]
    lines = event.get("lines") or ()
    totals = event.get("totals")
    if totals is not None and (state["tot"] is None or [t, eid] > state["tot"][:2]):
        state["tot"] = [
            t,
            eid,
            totals["subtotal"],
            totals["discounts"],
            totals["tax"],
            totals["shipping"],
            totals["total"],
        ]
    if kind == "placed" or kind == "updated":
        first = "placed_t" if kind == "placed" else "updated_t"
        state[first] = _min(state[first], t)
        snap = state["snap"]
        if snap is None:
            snap = state["snap"] = {"k": None, "lk": None, "lines": {}}
        key = [t, eid]
        if snap["k"] is None or key > snap["k"]:
            snap["k"] = key
            snap["channel"] = event.get("channel")
            snap["customer_ref"] = event.get("customer_ref")
            snap["ext_ref"] = event.get("external_order_ref")
            snap["currency"] = event.get("currency")
            snap["psb"] = event.get("promised_ship_by")
            snap["pdb"] = event.get("promised_deliver_by")
        # An update without lines is a header-only change (address, promise dates), so lines
        # come from the latest snapshot that has any.
        if lines and (snap["lk"] is None or key > snap["lk"]):
            snap["lk"] = key
            snap["lines"] = {
                ln["line_id"]: [ln["sku"], ln["quantity"], ln["unit_price"]] for ln in lines
            }
        effect = f"{kind}: {len(lines)} lines"
        if totals:
            effect += f", total {totals['total']} {event.get('currency')}"
        return effect, True
    if kind == "cancelled":
        state["cancel_t"] = _min(state["cancel_t"], t)
        reason = event.get("reason")
        return "order cancelled" + (f" ({reason})" if reason else ""), True
    if kind == "line_cancelled":
        lc_t = state["lc_t"]
        state["lc_t"] = t if lc_t is None or t > lc_t else lc_t
        target = state["lc"]
    elif kind == "backordered":
        target = state["bo"]
    elif kind == "substituted":
        target = state["subq"]
        subs = state["sub"]
        for ln in lines:
            current = subs.get(ln["line_id"])
            if current is None or [t, eid] > current[:2]:
                subs[ln["line_id"]] = [t, eid, ln.get("substituted_sku")]
    else:  # a type this build does not know yet: recorded in the timeline only
        return f"ignored order event type {kind}", totals is not None
    parts = []
    for ln in lines:
        units = _affected(ln)
        _add_units(target, ln["line_id"], units)
        parts.append(f"{ln['line_id']}x{units}")
    return f"{kind}: {' '.join(parts)}", True


def _apply_latest(facts: dict[str, Any], field: str, t: int, eid: str, value: Any) -> bool:
    """Keep the value of the greatest (event_time, event_id); True if the *value* changed."""
    if value is None:
        return False
    current = facts[field]
    if current is None:
        facts[field] = [t, eid, value]
        return True
    if [t, eid] > current[:2]:
        facts[field] = [t, eid, value]
        return value != current[2]
    return False


def _apply_lines(facts: dict[str, Any], lines: Any, rank: int, t: int, eid: str) -> bool:
    """Lines of the most advanced event (then latest) that has any; True if they changed."""
    if not lines:
        return False
    key = [rank, t, eid]
    if facts["lk"] is not None and key < facts["lk"]:
        return False
    facts["lk"] = key
    units = _line_units(lines)
    if units == facts["l"]:
        return False
    facts["l"] = units
    return True


def _apply_shipment(state: State, t: int, eid: str, event: Event) -> tuple[str, bool]:
    shipment_id = event["shipment_id"]
    status = event["status"]
    rank = SHIPMENT_RANK.get(status)
    if rank is None and status != "exception" and status != "cancelled":
        return f"shipment {shipment_id}: ignored status {status}", False
    facts = state["sh"].get(shipment_id)
    material = facts is None
    if facts is None:
        facts = state["sh"][shipment_id] = _new_shipment()
    if rank is not None:
        if rank > facts["r"]:
            facts["r"] = rank
            material = True
        if _lower_times(facts["t"], rank, t):
            material = True
        progress = facts["p"]
        if progress is None or [t, eid] > progress:
            facts["p"] = [t, eid]
            # Newer progress only matters to the canonical view if it clears an exception.
            if facts["x"] is not None:
                material = True
    else:
        rank = -1  # exception/cancel lines only count when no progress event has lines
        if status == "exception":
            exc = facts["x"]
            if exc is None or [t, eid] > exc[:2]:
                facts["x"] = [t, eid, event.get("exception_reason")]
                material = True
        elif facts["c"] is None or t < facts["c"]:
            material = material or facts["c"] is None  # derive only asks "cancelled at all?"
            facts["c"] = t
    lines = event.get("lines")
    # Evaluated one by one: every fact must be recorded, whatever the others report.
    for changed in (
        _apply_lines(facts, lines, rank, t, eid),
        _apply_latest(facts, "wh", t, eid, event.get("warehouse")),
        _apply_latest(facts, "car", t, eid, event.get("carrier")),
        _apply_latest(facts, "trk", t, eid, event.get("tracking_number")),
    ):
        material = material or changed
    where = event.get("warehouse")
    units = sum(line["quantity"] for line in lines) if lines else 0
    text = f"shipment {shipment_id} {status}"
    if units:
        text += f", {units} units"
    if where:
        text += f" @ {where}"
    if status == "exception" and event.get("exception_reason"):
        text += f": {event['exception_reason']}"
    return text, material


def _apply_return(state: State, t: int, eid: str, event: Event) -> tuple[str, bool]:
    return_id = event["return_id"]
    status = event["status"]
    rank = RETURN_RANK.get(status)
    if rank is None and status != "rejected":
        return f"return {return_id}: ignored status {status}", False
    facts = state["rt"].get(return_id)
    material = facts is None
    if facts is None:
        facts = state["rt"][return_id] = _new_return()
    if rank is not None:
        if rank > facts["r"]:
            facts["r"] = rank
            material = True
        if _lower_times(facts["t"], rank, t):
            material = True
    else:
        rank = -1
        if facts["rj"] is None or t < facts["rj"]:
            material = material or facts["rj"] is None  # derive only asks "rejected at all?"
            facts["rj"] = t
    lines = event.get("lines")
    if _apply_lines(facts, lines, rank, t, eid):
        material = True
    amount = event.get("refund_amount")
    if amount is not None:
        current = facts["amt"]
        if current is None or [t, eid] > current[:2]:
            facts["amt"] = [t, eid, amount, event.get("currency")]
            material = True
    units = sum(line["quantity"] for line in lines) if lines else 0
    text = f"return {return_id} {status}"
    if units:
        text += f", {units} units"
    if amount is not None:
        text += f", refund {amount} {event.get('currency')}"
    return text, material


def _apply_settlement(state: State, t: int, eid: str, event: Event) -> tuple[str, bool]:
    line_id = event["settlement_line_id"]
    current = state["st"].get(line_id)
    # Dedupe by settlement_line_id: a provider re-sending a line under a new event_id must
    # not double-count; the greatest (event_time, event_id) version of the line wins.
    material = current is None or [t, eid] > current[:2]
    if material:
        state["st"][line_id] = [
            t,
            eid,
            event["transaction_type"],
            event["amount"],
            event["currency"],
            event["posted_time"],
            event["provider"],
            event["settlement_id"],
        ]
    effect = (
        f"{event['provider']} {event['transaction_type']} {event['amount']} "
        f"{event['currency']} ({event['settlement_id']})"
    )
    return effect, material


_APPLIERS = {
    "order": _apply_order,
    "shipment": _apply_shipment,
    "return": _apply_return,
    "settlement": _apply_settlement,
}

_WHAT_FIELD = {
    "order": "type",
    "shipment": "status",
    "return": "status",
    "settlement": "transaction_type",
}


UNCHANGED = 0  # a replay: nothing recorded
RECORDED = 1  # new event, but no fact the canonical view depends on moved
MATERIAL = 2  # new event that may change the canonical view


def fold_event(state: State, event_kind: str, event: Event) -> int:
    """Fold ``event`` into ``state`` in place; UNCHANGED, RECORDED or MATERIAL.

    RECORDED lets ``step`` skip derive for the common no-op events (repeated carrier scans,
    late low-rank statuses, re-sent settlement lines) without changing any result.
    """
    applier = _APPLIERS.get(event_kind)
    if applier is None:
        raise ValueError(f"unknown event kind {event_kind!r}")
    eid = event["event_id"]
    ids = state["ids"]
    if eid in ids:
        return UNCHANGED
    ids[eid] = 1
    t = event["event_time"]
    source = event["source_system"]
    effect, material = applier(state, t, eid, event)
    tmax = state["tmax"]
    if tmax is None or t > tmax:
        state["tmax"] = t
    sources = state["src"]
    if source not in sources:
        sources[source] = 1
        material = True
    state["last"] = [eid, source, event.get("correlation_id")]
    timeline = state["tl"]
    entry = [t, eid, event_kind, event[_WHAT_FIELD[event_kind]], source, effect]
    # Keep the newest TIMELINE_LIMIT by (event_time, event_id): a function of the event set,
    # whatever the arrival order.
    if len(timeline) < TIMELINE_LIMIT or entry > timeline[0]:
        insort(timeline, entry)
        if len(timeline) > TIMELINE_LIMIT:
            del timeline[0]
    return MATERIAL if material else RECORDED


def apply(state: State, event_kind: str, event: Event) -> bool:
    """Fold ``event`` into ``state`` in place. False when it was already applied (replay).

    ``event_kind`` is "order", "shipment", "return" or "settlement"; ``event`` is the decoded
    record (int epoch millis, str enums), ideally already accepted by ``validate``.
    """
    return fold_event(state, event_kind, event) != UNCHANGED


def timeline(state: State) -> list[dict[str, Any]]:
    """The newest applied events, oldest first, as readable dicts."""
    return [
        {
            "event_time": t,
            "event_id": eid,
            "kind": kind,
            "what": what,
            "source_system": source,
            "effect": effect,
        }
        for t, eid, kind, what, source, effect in state["tl"]
    ]
