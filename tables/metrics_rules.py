"""Which metrics a FulfillmentState transition contributes to (pure; no broker).

Metrics come from *milestones* of the canonical state, compared with what was already counted
for the order (`Counted`, a small per-order record): "order accepted" is counted once, when
`accepted_at` first appears, with the milestone's own time as event time. So duplicates and
replays of a version (at-least-once delivery) never count twice, and re-emitted states with
unchanged milestones contribute nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tables.windows import LATE_EVENTS, LATE_SPEC, MetricSpec, Observation

METRICS: dict[str, MetricSpec] = {
    "orders_accepted": MetricSpec("counter", "events"),
    "orders_cancelled": MetricSpec("counter", "events"),
    "orders_returned": MetricSpec("counter", "events"),
    "orders_delivered": MetricSpec("counter", "events"),
    "units_shipped": MetricSpec("counter", "units"),
    # count = shipments created, sum = shipments that went into exception: value = sum/count.
    "shipment_exception_rate": MetricSpec("ratio", "events"),
    "order_to_ship_ms": MetricSpec("latency", "ms"),
    "accept_to_delivery_ms": MetricSpec("latency", "ms"),
    # Observations that arrived after their window closed, labelled by the metric.
    LATE_EVENTS: LATE_SPEC,
}

# Milestone -> counter metric, counted once per order when the milestone first appears.
_MILESTONE_COUNTERS = {
    "accepted_at": "orders_accepted",
    "cancelled_at": "orders_cancelled",
    "returned_at": "orders_returned",
    "delivered_at": "orders_delivered",
}
# Latency metric -> (from, to) milestones, measured once per order when both are known.
_LATENCIES = {
    "order_to_ship_ms": ("accepted_at", "shipped_at"),
    "accept_to_delivery_ms": ("accepted_at", "delivered_at"),
}

Counted = dict[str, Any]  # {"v": version, "m": [counted], "units": n, "ships": n, "exc": [ids]}


def new_counted() -> Counted:
    return {"v": -1, "m": [], "units": 0, "ships": 0, "exc": []}


def _joined(values: list[str]) -> str:
    # Multi-valued labels are comma-joined, as the SLA rules label alerts.
    return ",".join(sorted(values)) or "none"


def observe(counted: Counted, state: Mapping[str, Any]) -> list[Observation]:
    """Observations of `state` not yet counted for its order; updates `counted` in place.
    A version at or below the last one seen (a duplicate or replay) contributes nothing."""
    if state["version"] <= counted["v"]:
        return []
    counted["v"] = state["version"]
    channel = (("channel", state["channel"]),)
    warehouse = (("warehouse", _joined(list(state["warehouses"]))),)
    carrier = (("carrier", _joined(list(state["carriers"]))),)
    seen = set(counted["m"])
    out: list[Observation] = []
    for milestone, metric in _MILESTONE_COUNTERS.items():
        at = state.get(milestone)
        if at is not None and milestone not in seen:
            seen.add(milestone)
            out.append(Observation(metric, channel, at, 1, 1))
    for metric, (start, end) in _LATENCIES.items():
        began, ended = state.get(start), state.get(end)
        if began is not None and ended is not None and metric not in seen:
            seen.add(metric)
            latency = max(0, ended - began)
            for labels in ((), channel, warehouse, carrier):
                out.append(Observation(metric, labels, ended, 1, latency))
    counted["m"] = sorted(seen)
    at = state["updated_at"]
    units = sum(line["shipped"] for line in state["lines"])
    if units > counted["units"]:  # shipped units only grow; a correction is not un-shipped
        out.append(Observation("units_shipped", warehouse, at, 1, units - counted["units"]))
        counted["units"] = units
    if state["shipment_count"] > counted["ships"]:
        out.append(Observation("shipment_exception_rate", warehouse, at,
                               state["shipment_count"] - counted["ships"], 0))
        counted["ships"] = state["shipment_count"]
    flagged = set(counted["exc"])
    for exception in state["open_exceptions"]:
        if exception["shipment_id"] not in flagged:  # a shipment counts once, however often
            flagged.add(exception["shipment_id"])
            out.append(Observation("shipment_exception_rate", warehouse, exception["since"],
                                   0, 1))
    counted["exc"] = sorted(flagged)
    return out
