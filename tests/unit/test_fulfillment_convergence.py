"""Property: the canonical state is a function of the *set* of distinct events.

Any permutation of an order's events, with replays sprinkled in, must end in the same
canonical view (and the same facts and timeline) as applying the set in event-time order.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables.fulfillment import State, apply, canonical_view, derive, new_state, step, timeline

from .events import MIN, T0, kind_of, line, order, ret, settlement, shipment

LINES = ("l1", "l2", "l3")
SHIPMENT_STATUSES = (
    "created", "allocated", "picked", "packed", "shipped", "in_transit", "out_for_delivery",
    "delivered", "exception", "cancelled",
)
RETURN_STATUSES = ("requested", "approved", "rejected", "received", "inspected", "refunded")

# Few distinct times so that ties (broken by event_id) are common.
times = st.integers(min_value=0, max_value=12).map(lambda i: T0 + i * MIN)
quantities = st.dictionaries(st.sampled_from(LINES), st.integers(0, 3), max_size=3)


@st.composite
def order_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = iter(range(10_000))

    def eid() -> str:
        # Not in time order, so event_id tie-breaks are exercised in both directions.
        return f"e{draw(st.integers(0, 99)):02d}-{next(ids)}"

    def order_lines() -> list[dict[str, Any]]:
        picked = draw(st.lists(st.sampled_from(LINES), min_size=1, max_size=3, unique=True))
        return [line(lid, draw(st.integers(0, 3)), unit_price=draw(st.integers(0, 2000)))
                for lid in sorted(picked)]

    events = [order("placed", draw(times), lines=order_lines(), eid=eid())]
    for _ in range(draw(st.integers(0, 2))):
        lines = order_lines() if draw(st.booleans()) else []
        events.append(order("updated", draw(times), lines=lines, eid=eid(),
                            promised_ship_by=draw(st.none() | times)))
    for kind in ("line_cancelled", "backordered", "substituted"):
        for _ in range(draw(st.integers(0, 1))):
            lid = draw(st.sampled_from(LINES))
            affected = draw(st.integers(0, 2))
            sub = draw(st.sampled_from(["ALT-1", "ALT-2"])) if kind == "substituted" else None
            events.append(order(kind, draw(times), eid=eid(),
                                lines=[line(lid, 3, affected=affected, substituted_sku=sub)]))
    if draw(st.integers(0, 4)) == 0:
        events.append(order("cancelled", draw(times), eid=eid()))
    for n in range(draw(st.integers(0, 3))):
        sid = f"s-{n}"
        lines = draw(quantities)
        wh = draw(st.sampled_from(["wms-east", "3pl-acme", None]))
        for status in draw(st.lists(st.sampled_from(SHIPMENT_STATUSES), max_size=5)):
            events.append(shipment(
                status, draw(times), shipment_id=sid, eid=eid(), warehouse=wh,
                lines=lines if draw(st.booleans()) else draw(quantities),
                exception_reason="damaged" if status == "exception" else None,
            ))
    for n in range(draw(st.integers(0, 2))):
        rid = f"r-{n}"
        lines = draw(quantities)
        for status in draw(st.lists(st.sampled_from(RETURN_STATUSES), max_size=4)):
            events.append(ret(status, draw(times), return_id=rid, lines=lines, eid=eid(),
                              refund_amount=draw(st.none() | st.integers(0, 3000))))
    for _ in range(draw(st.integers(0, 4))):
        events.append(settlement(
            draw(st.sampled_from(["charge", "refund", "fee", "chargeback", "adjustment"])),
            draw(st.integers(-3000, 3000)),
            draw(times),
            line_id=draw(st.sampled_from(["st-1:1", "st-1:2", "st-2:1", "st-2:2"])),
            settlement_id=draw(st.sampled_from(["st-1", "st-2"])),
            currency=draw(st.sampled_from(["USD", "USD", "EUR"])),
            eid=eid(),
        ))
    return events


def _facts(state: State) -> dict[str, Any]:
    # "last" names the event that happened to arrive last; versions count arrivals.
    return {k: v for k, v in state.items() if k not in ("last", "v", "vd")}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=order_histories(), data=st.data())
def test_any_arrival_order_with_replays_converges(
    history: list[dict[str, Any]], data: st.DataObject
) -> None:
    reference = new_state("o-1")
    for event in sorted(history, key=lambda e: (e["event_time"], e["event_id"])):
        assert apply(reference, kind_of(event), event)
    expected = derive(reference)
    assert expected is not None

    arrivals = list(data.draw(st.permutations(history), label="arrival order"))
    replays = data.draw(st.lists(st.sampled_from(history), max_size=5), label="replays")
    for replay in replays:
        arrivals.insert(data.draw(st.integers(0, len(arrivals)), label="at"), dict(replay))

    # The agent keeps the state as JSON in a table; restoring it mid-stream changes nothing.
    restore_at = data.draw(st.sets(st.integers(0, len(arrivals))), label="restore after")
    state = new_state("o-1")
    emitted = []
    last_view = None
    for i, event in enumerate(arrivals):
        if i in restore_at:
            state = json.loads(json.dumps(state))
        fs = step(state, kind_of(event), event)
        if fs is not None:
            emitted.append(fs["version"])
            last_view = canonical_view(fs)
        else:
            # step may skip derive, but only when the canonical view really did not move.
            now = derive(state)
            assert (now and canonical_view(now)) == last_view
    actual = derive(state)
    assert actual is not None
    assert canonical_view(actual) == canonical_view(expected)
    assert _facts(state) == _facts(reference)
    assert timeline(state) == timeline(reference)
    assert emitted == list(range(1, len(emitted) + 1))


@settings(max_examples=60, deadline=None)
@given(history=order_histories())
def test_derived_quantities_never_go_negative(history: list[dict[str, Any]]) -> None:
    state = new_state("o-1")
    for event in history:
        apply(state, kind_of(event), event)
    fs = derive(state)
    assert fs is not None
    for ln in fs["lines"]:
        assert all(ln[k] >= 0 for k in ("cancelled", "backordered", "allocated", "shipped"))
        assert ln["cancelled"] <= ln["ordered"]
        assert ln["allocated"] >= ln["picked"] >= ln["packed"] >= ln["shipped"]
        assert ln["shipped"] >= ln["delivered"]
    assert fs["expected_charge"] >= 0
