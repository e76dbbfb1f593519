"""Live counts of one partition's orders: how many are in each fulfillment status and how many
SLA alerts fire, kept incrementally where the pipeline publishes states and evaluates alerts,
so an overview of the whole cluster costs a dict read per partition, not a table scan.

A census is a JSON-able dict ``{"orders": {status: n}, "firing_alerts": n}`` (statuses with a
zero count are left out). Each order record remembers the status it is counted under
(``record["cs"]``, set whenever a canonical state is published), so the decrement of a status
change needs no second derive, and a census always equals ``recount`` of its partition's
records: that invariant is what the tests check after arbitrary event orders and batchings.

An orphan (events, but no order yet) has no canonical state and is not counted until its
order arrives. A record written before records carried ``cs`` is counted only once its
status next changes; ``recount(..., adopt=True)`` (the bulk replay) counts it at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

Census = dict[str, Any]
Record = MutableMapping[str, Any]

COUNTED_STATUS = "cs"  # record field: the fulfillment status this record is counted under
FIRING = "firing"


def new_census() -> Census:
    return {"orders": {}, "firing_alerts": 0}


def restore(snapshot: Mapping[str, Any] | None) -> Census:
    """A census from its stored form (None: an empty one)."""
    if snapshot is None:
        return new_census()
    return {"orders": {str(k): int(v) for k, v in snapshot.get("orders", {}).items() if v},
            "firing_alerts": int(snapshot.get("firing_alerts", 0))}


def count_status(census: Census | None, record: Record, status: str) -> None:
    """The record's order was published with `status`: move it there in the census."""
    old = record.get(COUNTED_STATUS)
    if old == status:
        return
    record[COUNTED_STATUS] = status
    if census is not None:
        orders = census["orders"]
        if old is not None:
            _add(orders, old, -1)
        _add(orders, status, 1)


def firing_alerts(record: Mapping[str, Any]) -> int:
    """How many of the record's SLA alerts fire (pending and resolving ones do not)."""
    return sum(1 for alert in record["sla"]["alerts"] if alert["status"] == FIRING)


def count_alerts(census: Census | None, before: int, after: int) -> None:
    """The record's firing alerts went from `before` to `after`."""
    if census is not None and before != after:
        census["firing_alerts"] += after - before


def forget(census: Census | None, record: Mapping[str, Any]) -> None:
    """The record leaves the table (closed-order expiry): take its share out."""
    if census is None:
        return
    status = record.get(COUNTED_STATUS)
    if status is not None:
        _add(census["orders"], status, -1)
    census["firing_alerts"] -= firing_alerts(record)


def recount(records: Iterable[Record], *, adopt: bool = False) -> Census:
    """The census of `records`, counted from scratch (what incremental counting must equal).

    With `adopt`, a record that has a canonical state but no counted status yet (written
    before records carried one) is given its derived status here and counted.
    """
    census = new_census()
    orders = census["orders"]
    for record in records:
        status = record.get(COUNTED_STATUS)
        if status is None and adopt:
            status = _derived_status(record)
            if status is not None:
                record[COUNTED_STATUS] = status
        if status is not None:
            _add(orders, status, 1)
        census["firing_alerts"] += firing_alerts(record)
    return census


def merge(censuses: Iterable[Mapping[str, Any]]) -> Census:
    """The sum of several partitions' censuses."""
    total = new_census()
    for census in censuses:
        for status, n in census.get("orders", {}).items():
            _add(total["orders"], status, n)
        total["firing_alerts"] += census.get("firing_alerts", 0)
    return total


def orders_total(census: Mapping[str, Any]) -> int:
    return sum(census["orders"].values())


def statuses(census: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """(status, count) in status order, for stable output."""
    return iter(sorted(census["orders"].items()))


def _add(counts: dict[str, int], status: str, delta: int) -> None:
    n = counts.get(status, 0) + delta
    if n:
        counts[status] = n  # a negative count stays visible: it means counting went wrong
    else:
        counts.pop(status, None)


def _derived_status(record: Mapping[str, Any]) -> str | None:
    from tables import fulfillment  # the fold is only needed for adoption (bulk, rare)

    derived = fulfillment.derive(record["f"])
    return None if derived is None else derived["fulfillment_status"]
