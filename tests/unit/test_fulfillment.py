"""Real-world cases for the per-order fold."""

from __future__ import annotations

import copy
import json
from typing import Any

from tables.fulfillment import (
    State,
    apply,
    canonical_view,
    derive,
    is_closed,
    new_state,
    step,
    timeline,
)

from .events import DAY, HOUR, MIN, T0, kind_of, line, order, ret, settlement, shipment


def fold(*events: dict[str, Any], state: State | None = None) -> tuple[State, dict[str, Any]]:
    state = state or new_state("o-1")
    for event in events:
        step(state, kind_of(event), event)
    fs = derive(state)
    assert fs is not None
    return state, dict(fs)


def lines_by_id(fs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {ln["line_id"]: ln for ln in fs["lines"]}


def funnel(status: str, t: int, **kw: Any) -> list[dict[str, Any]]:
    """A shipment walking allocated -> ... -> status, one minute per step."""
    path = ["allocated", "picked", "packed", "shipped", "in_transit", "out_for_delivery",
            "delivered"]
    steps = path[: path.index(status) + 1]
    return [shipment(s, t + i * MIN, **kw) for i, s in enumerate(steps)]


def test_happy_path_placed_to_delivered_and_settled() -> None:
    state = new_state("o-1")
    placed = order()
    first = step(state, "order", placed)
    assert first is not None
    assert first["version"] == 1
    assert first["fulfillment_status"] == "accepted"
    assert first["financial_status"] == "unsettled"
    assert first["caused_by_event_id"] == placed["event_id"]
    statuses = []
    for event in funnel("delivered", T0 + HOUR):
        fs = step(state, "shipment", event)
        statuses.append(fs and fs["fulfillment_status"])
    # in_transit and out_for_delivery change nothing canonical: no new version.
    assert statuses == ["allocated", "picked", "packed", "shipped", None, None, "delivered"]
    fs = step(state, "settlement", settlement("charge", 2500, T0 + 2 * HOUR))
    assert fs is not None
    assert fs["version"] == 7
    assert fs["financial_status"] == "settled"
    assert fs["fulfillment_status"] == "delivered"
    assert fs["returns_status"] == "none"
    assert fs["accepted_at"] == T0
    assert fs["allocated_at"] == T0 + HOUR
    assert fs["first_shipped_at"] == fs["shipped_at"] == T0 + HOUR + 3 * MIN
    assert fs["delivered_at"] == T0 + HOUR + 6 * MIN
    assert fs["split"] is False
    assert fs["shipment_count"] == 1
    assert fs["warehouses"] == ["wms-east"]
    assert fs["carriers"] == ["ups"]
    assert fs["source_systems"] == ["shopify", "stripe", "wms-east"]
    assert fs["order_total"] == fs["expected_charge"] == fs["charged_amount"] == 2500
    assert fs["flags"] == []
    l1 = lines_by_id(fs)["l1"]
    assert (l1["ordered"], l1["allocated"], l1["shipped"], l1["delivered"]) == (2, 2, 2, 2)
    assert len(timeline(state)) == 9


def test_split_shipment_across_two_warehouses() -> None:
    east = funnel("shipped", T0 + HOUR, shipment_id="s-1", lines={"l1": 2}, warehouse="wms-east")
    acme = funnel("allocated", T0 + HOUR, shipment_id="s-2", lines={"l2": 1},
                  warehouse="3pl-acme")
    state, fs = fold(order(), *east, *acme)
    assert fs["fulfillment_status"] == "partially_shipped"
    assert fs["split"] is True
    assert fs["shipment_count"] == 2
    assert fs["warehouses"] == ["3pl-acme", "wms-east"]
    assert fs["first_shipped_at"] == T0 + HOUR + 3 * MIN
    assert fs["shipped_at"] is None
    _, fs = fold(shipment("shipped", T0 + 3 * HOUR, shipment_id="s-2", lines={"l2": 1},
                          warehouse="3pl-acme"), state=state)
    assert fs["fulfillment_status"] == "shipped"
    assert fs["shipped_at"] == T0 + 3 * HOUR


def test_partial_cancellation_prorates_expected_charge() -> None:
    cancel_one = order("line_cancelled", T0 + MIN, lines=[line("l1", 2, affected=1)])
    state, fs = fold(order(), cancel_one)
    l1 = lines_by_id(fs)["l1"]
    assert (l1["ordered"], l1["cancelled"]) == (2, 1)
    assert fs["fulfillment_status"] == "partially_cancelled"
    assert fs["cancelled_at"] is None
    # 2500 ordered, 1000 of merchandise cancelled -> 1500 expected.
    assert fs["expected_charge"] == 1500
    _, fs = fold(*funnel("shipped", T0 + HOUR, lines={"l1": 1, "l2": 1}), state=state)
    assert fs["fulfillment_status"] == "shipped"
    assert fs["flags"] == []


def test_cancelling_every_line_cancels_the_order() -> None:
    _, fs = fold(
        order(),
        order("line_cancelled", T0 + MIN, lines=[line("l1", 2)]),
        order("line_cancelled", T0 + 2 * MIN, lines=[line("l2", 1, affected=1)]),
    )
    assert fs["fulfillment_status"] == "cancelled"
    assert fs["cancelled_at"] == T0 + 2 * MIN
    assert fs["expected_charge"] == 0


def test_backorder_then_allocation() -> None:
    backorder = order("backordered", T0 + MIN, lines=[line("l1", 2, affected=2)])
    state, fs = fold(order(), backorder)
    assert fs["fulfillment_status"] == "backordered"
    assert lines_by_id(fs)["l1"]["backordered"] == 2
    _, fs = fold(shipment("allocated", T0 + HOUR, lines={"l2": 1}), state=state)
    assert fs["fulfillment_status"] == "backordered"  # l1 still waits for stock
    _, fs = fold(shipment("allocated", T0 + DAY, shipment_id="s-2", lines={"l1": 2}),
                 state=state)
    assert fs["fulfillment_status"] == "allocated"
    assert lines_by_id(fs)["l1"]["backordered"] == 0
    assert fs["allocated_at"] == T0 + HOUR


def test_substitution_is_recorded_per_line() -> None:
    sub = order("substituted", T0 + MIN, lines=[line("l1", 2, affected=1, substituted_sku="ALT")])
    _, fs = fold(order(), sub, *funnel("shipped", T0 + HOUR))
    l1 = lines_by_id(fs)["l1"]
    assert l1["substituted_sku"] == "ALT"
    assert l1["substituted"] == 1
    assert l1["sku"] == "SKU-l1"
    assert fs["fulfillment_status"] == "shipped"


def test_shipment_exception_then_recovery() -> None:
    state, fs = fold(order(), *funnel("shipped", T0 + HOUR))
    exc = shipment("exception", T0 + DAY, exception_reason="address_issue", lines={})
    _, fs = fold(exc, state=state)
    assert fs["open_exceptions"] == [
        {"shipment_id": "s-1", "reason": "address_issue", "since": T0 + DAY}
    ]
    assert fs["fulfillment_status"] == "shipped"  # exception is a flag, not a regression
    # A late, older scan does not clear an exception that happened after it.
    _, fs = fold(shipment("in_transit", T0 + DAY - MIN, lines={}), state=state)
    assert len(fs["open_exceptions"]) == 1
    _, fs = fold(shipment("out_for_delivery", T0 + 2 * DAY, lines={}), state=state)
    assert fs["open_exceptions"] == []


def test_late_packed_after_shipped_never_moves_back() -> None:
    state, fs = fold(order(), shipment("shipped", T0 + 2 * HOUR))
    assert fs["fulfillment_status"] == "shipped"
    late = shipment("packed", T0 + HOUR)
    fs = step(state, "shipment", late)
    assert fs is not None  # it does teach us an earlier allocation time...
    assert fs["allocated_at"] == T0 + HOUR
    assert fs["fulfillment_status"] == "shipped"  # ...but the shipment stays shipped
    assert step(state, "shipment", shipment("picked", T0 + 90 * MIN)) is None


def test_partial_return_and_refund() -> None:
    state, fs = fold(order(), *funnel("delivered", T0 + HOUR),
                     settlement("charge", 2500, T0 + 2 * HOUR))
    assert fs["financial_status"] == "settled"
    _, fs = fold(ret("requested", T0 + 3 * DAY), state=state)
    assert fs["returns_status"] == "requested"
    _, fs = fold(ret("received", T0 + 6 * DAY, refund_amount=1000), state=state)
    assert fs["returns_status"] == "partially_returned"
    assert fs["returned_at"] == T0 + 6 * DAY
    assert fs["expected_refund"] == 1000
    assert lines_by_id(fs)["l1"]["returned"] == 1
    _, fs = fold(ret("refunded", T0 + 7 * DAY), settlement("refund", -1000, T0 + 8 * DAY),
                 state=state)
    assert fs["financial_status"] == "partially_refunded"
    assert fs["refunded_amount"] == 1000
    assert fs["refunded_at"] == T0 + 7 * DAY
    assert lines_by_id(fs)["l1"]["refunded"] == 1
    # The rest comes back too: everything shipped is returned and refunded.
    rest = {"l1": 1, "l2": 1}
    _, fs = fold(ret("refunded", T0 + 9 * DAY, return_id="r-2", lines=rest, refund_amount=1500),
                 settlement("refund", -1500, T0 + 10 * DAY), state=state)
    assert fs["returns_status"] == "returned"
    assert fs["financial_status"] == "refunded"
    assert fs["flags"] == []


def test_rejected_return() -> None:
    _, fs = fold(order(), *funnel("delivered", T0), ret("requested", T0 + DAY),
                 ret("rejected", T0 + 2 * DAY))
    assert fs["returns_status"] == "rejected"
    assert lines_by_id(fs)["l1"]["returned"] == 0


def test_full_cancellation_after_allocation() -> None:
    state, fs = fold(order(), shipment("allocated", T0 + HOUR))
    assert fs["fulfillment_status"] == "allocated"
    _, fs = fold(order("cancelled", T0 + 2 * HOUR, reason="customer"), state=state)
    assert fs["fulfillment_status"] == "cancelled"
    assert fs["flags"] == ["over_allocated"]  # the warehouse still holds the stock
    _, fs = fold(shipment("cancelled", T0 + 3 * HOUR, lines={}), state=state)
    assert fs["flags"] == []
    assert fs["fulfillment_status"] == "cancelled"
    assert fs["cancelled_at"] == T0 + 2 * HOUR
    assert fs["shipment_count"] == 0
    assert all(ln["cancelled"] == ln["ordered"] for ln in fs["lines"])
    assert all(ln["allocated"] == 0 for ln in fs["lines"])  # the cancelled shipment released
    assert fs["expected_charge"] == 0
    assert fs["financial_status"] == "settled"  # nothing is owed


def test_order_cancel_after_partial_shipment_keeps_shipped_units() -> None:
    _, fs = fold(order(), *funnel("shipped", T0, lines={"l1": 2}),
                 order("cancelled", T0 + HOUR))
    by_id = lines_by_id(fs)
    assert by_id["l1"]["cancelled"] == 0
    assert by_id["l2"]["cancelled"] == 1
    assert fs["fulfillment_status"] == "shipped"
    assert fs["cancelled_at"] == T0 + HOUR
    assert fs["expected_charge"] == 2000


def test_over_shipment_and_over_return_are_flagged_not_fatal() -> None:
    _, fs = fold(order(), shipment("shipped", T0 + HOUR, lines={"l1": 3, "l2": 1}))
    assert fs["flags"] == ["over_shipped"]
    assert lines_by_id(fs)["l1"]["shipped"] == 3
    assert fs["fulfillment_status"] == "shipped"
    _, fs = fold(order(), shipment("shipped", T0 + HOUR),
                 ret("received", T0 + DAY, lines={"l2": 2}))
    assert fs["flags"] == ["over_returned"]


def test_unknown_line_is_flagged() -> None:
    _, fs = fold(order(), shipment("shipped", T0 + HOUR, lines={"l1": 2, "l2": 1, "l9": 1}))
    assert "unknown_line" in fs["flags"]
    assert lines_by_id(fs)["l9"]["sku"] is None


def test_shipment_before_order_is_kept_until_the_order_arrives() -> None:
    state = new_state("o-1")
    assert step(state, "shipment", shipment("shipped", T0 + HOUR)) is None
    assert step(state, "settlement", settlement("charge", 2500, T0 + DAY)) is None
    assert derive(state) is None
    fs = step(state, "order", order())
    assert fs is not None
    assert fs["version"] == 1
    assert fs["fulfillment_status"] == "shipped"
    assert fs["financial_status"] == "settled"


def test_duplicate_event_is_unchanged() -> None:
    shipped = shipment("shipped", T0 + HOUR)
    state, _ = fold(order(), shipped)
    before = copy.deepcopy(state)
    assert apply(state, "shipment", shipped) is False
    assert step(state, "shipment", dict(shipped)) is None
    assert state == before


def test_settlement_lines_dedupe_by_settlement_line_id() -> None:
    charge = settlement("charge", 2500, T0, line_id="st-1:7")
    resent = settlement("charge", 2500, T0 + MIN, line_id="st-1:7")  # new event_id
    _, fs = fold(order(), charge, resent)
    assert fs["charged_amount"] == 2500


def test_financial_axis() -> None:
    state, fs = fold(order(), settlement("charge", 1000, T0))
    assert fs["financial_status"] == "unsettled"  # 1000 of 2500
    _, fs = fold(settlement("charge", 1500, T0 + MIN), settlement("fee", -80, T0 + MIN),
                 state=state)
    assert fs["financial_status"] == "settled"
    assert fs["fee_amount"] == 80
    assert fs["settlement_ids"] == ["st-1"]
    _, fs = fold(settlement("refund", -2500, T0 + DAY), state=state)
    assert fs["financial_status"] == "refunded"
    assert fs["refunded_at"] == T0 + DAY


def test_settlement_in_another_currency_is_flagged_and_not_counted() -> None:
    _, fs = fold(order(), settlement("charge", 2500, T0, currency="EUR"))
    assert fs["charged_amount"] == 0
    assert fs["flags"] == ["settlement_currency_mismatch"]


def test_chargeback_is_flagged() -> None:
    _, fs = fold(order(), settlement("charge", 2500, T0), settlement("chargeback", -2500, T0 + DAY))
    assert fs["chargeback_amount"] == 2500
    assert "chargeback" in fs["flags"]


def test_two_updates_converge_in_either_order() -> None:
    a = order("updated", T0 + MIN, lines=[line("l1", 3), line("l2", 1, unit_price=500)])
    b = order("updated", T0 + 2 * MIN, lines=[line("l1", 1), line("l2", 1, unit_price=500)])
    placed = order()
    _, one = fold(placed, a, b)
    _, two = fold(b, placed, a)
    assert canonical_view(one) == canonical_view(two)
    assert lines_by_id(one)["l1"]["ordered"] == 1
    assert one["order_total"] == 1500


def test_header_only_update_keeps_lines() -> None:
    header = order("updated", T0 + MIN, lines=[], promised_ship_by=T0 + 3 * DAY)
    _, fs = fold(order(), header)
    assert lines_by_id(fs)["l1"]["ordered"] == 2
    assert fs["promised_ship_by"] == T0 + 3 * DAY


def test_unknown_symbols_from_newer_producers_are_recorded_only() -> None:
    state, fs = fold(order(), shipment("created", T0))
    before = canonical_view(fs)
    assert step(state, "shipment", shipment("unknown", T0 + HOUR, shipment_id="s-9")) is None
    assert step(state, "order", order("unknown", T0 + HOUR)) is None
    assert list(state["sh"]) == ["s-1"]
    assert canonical_view(derive(state) or {}) == before
    assert [e["what"] for e in timeline(state)] == ["placed", "created", "unknown", "unknown"]


def test_timeline_is_sorted_and_bounded() -> None:
    state = new_state("o-1")
    events = [shipment("in_transit", T0 + i * MIN, lines={}) for i in range(150)]
    for event in reversed(events):
        apply(state, "shipment", event)
    entries = timeline(state)
    assert len(entries) == 100
    assert [e["event_time"] for e in entries] == [T0 + i * MIN for i in range(50, 150)]
    assert entries[0]["effect"] == "shipment s-1 in_transit @ wms-east"


def test_state_is_plain_json() -> None:
    state, _ = fold(order(), *funnel("delivered", T0), ret("received", T0 + DAY),
                    settlement("charge", 2500, T0), shipment("exception", T0 + 2 * DAY))
    assert json.loads(json.dumps(state)) == state


def test_is_closed() -> None:
    retention = 30 * DAY
    state, _ = fold(order(), *funnel("delivered", T0))
    assert not is_closed(state, T0 + 90 * DAY, retention)  # not paid yet
    fold(settlement("charge", 2500, T0 + DAY), state=state)
    assert not is_closed(state, T0 + 10 * DAY, retention)  # returns window still open
    assert is_closed(state, T0 + 31 * DAY + HOUR, retention)
    fold(ret("requested", T0 + 20 * DAY), state=state)
    assert not is_closed(state, T0 + 90 * DAY, retention)  # a return is on its way back
    fold(ret("received", T0 + 25 * DAY), state=state)
    assert not is_closed(state, T0 + 40 * DAY, retention)
    assert is_closed(state, T0 + 60 * DAY, retention)


def test_orphans_expire_after_retention() -> None:
    state = new_state("o-1")
    apply(state, "shipment", shipment("shipped", T0))
    assert not is_closed(state, T0 + DAY, 30 * DAY)
    assert is_closed(state, T0 + 31 * DAY, 30 * DAY)


def test_carrier_delivery_scan_before_the_wms_ship_confirmation() -> None:
    # Carrier feeds are often faster than the warehouse's own ship confirmation.
    delivered = shipment("delivered", T0 + DAY, lines={}, warehouse=None)
    shipped = shipment("shipped", T0 + HOUR)
    _, fs = fold(order(), delivered, shipped)
    assert fs["fulfillment_status"] == "delivered"
    assert fs["delivered_at"] == T0 + DAY
    assert fs["shipped_at"] == T0 + HOUR
    assert fs["warehouses"] == ["wms-east"]


def test_returnless_refund_counts_as_returned() -> None:
    _, fs = fold(order(), *funnel("delivered", T0), ret("refunded", T0 + DAY, refund_amount=1000))
    assert fs["returns_status"] == "partially_returned"
    assert lines_by_id(fs)["l1"]["refunded"] == 1
    assert fs["refunded_at"] == T0 + DAY
