"""The pure per-order fulfillment fold: the one API the agents call on the hot path.

    state = new_state(order_id)              # JSON-compatible dict, stored per order
    if validate(kind, event) is None:        # else dead-letter with the returned reason
        fs = step(state, kind, event)        # apply + derive + version; None = nothing to emit

``apply``/``derive`` are also usable separately. The canonical state is a function of the
*set* of distinct events (see ``tables.fulfillment_facts``), so replays and any arrival
order converge; ``canonical_view`` is the part of a ``FulfillmentState`` that must agree.
"""

from __future__ import annotations

import hashlib
import marshal
from typing import Any

from tables.fulfillment_derive import NON_CANONICAL_FIELDS, canonical_view, derive
from tables.fulfillment_facts import (
    MATERIAL,
    RECEIVED,
    RECORDED,
    UNCHANGED,
    Event,
    State,
    apply,
    fold_event,
    new_state,
    timeline,
)
from tables.fulfillment_validate import validate
from tables.records import FulfillmentState

__all__ = [
    "MATERIAL",
    "NON_CANONICAL_FIELDS",
    "RECORDED",
    "UNCHANGED",
    "State",
    "apply",
    "canonical_view",
    "derive",
    "digest",
    "fold_event",
    "is_closed",
    "new_state",
    "republish",
    "seen",
    "settle",
    "step",
    "timeline",
    "validate",
]

# Statuses after which nothing more is expected from the warehouses.
_TERMINAL_FULFILLMENT = frozenset({"delivered", "cancelled"})
_FINAL_FINANCIAL = frozenset({"settled", "partially_refunded", "refunded"})


def digest(fs: FulfillmentState | dict[str, Any]) -> str:
    """Stable fingerprint of the canonical view (same across processes and restarts)."""
    view = dict(fs)
    for name in NON_CANONICAL_FIELDS:
        view.pop(name, None)
    # marshal format 0 has no back-references and no interning flags, so equal values give
    # equal bytes in any process; derive builds dicts in a fixed key order and sorts its lists.
    # SHA-1 is used as a fast change detector here, not for security.
    return hashlib.sha1(marshal.dumps(view, 0)).hexdigest()[:16]


def step(state: State, event_kind: str, event: Event) -> FulfillmentState | None:
    """Apply ``event`` and return the next version to emit, or None if nothing changed.

    None for a replayed event, for an orphan (order not seen yet) and for an event that leaves
    the canonical view as it was (e.g. a repeated carrier scan). Otherwise ``state["v"]`` is
    incremented and the returned state carries it together with the causing event's ids.
    """
    if fold_event(state, event_kind, event) != MATERIAL:
        return None  # a replay, or no fact the canonical view reads has moved
    return settle(state)


def settle(state: State) -> FulfillmentState | None:
    """The canonical state as a new version if it differs from the last one, else None.

    `step` calls it per event; a bulk path folds a whole batch with `fold_event` and settles
    each order once at the end (one derive and one version per order per batch).
    """
    return settle_view(state)[0]


def settle_view(state: State) -> tuple[FulfillmentState | None, FulfillmentState | None]:
    """`settle`, plus the canonical view it derived either way (None for an orphan): rules
    evaluated right after read it instead of deriving it again."""
    fs = derive(state)
    if fs is None:
        return None, None
    fingerprint = digest(fs)
    if fingerprint == state["vd"]:
        return None, fs
    state["vd"] = fingerprint
    state["v"] += 1
    fs["version"] = state["v"]
    return fs, fs


def seen(state: State, event_id: str) -> bool:
    """True when ``event_id`` was already applied (a replay that ``step`` would ignore)."""
    return event_id in state["ids"]


def republish(state: State, view: FulfillmentState | None = None) -> FulfillmentState | None:
    """The current canonical state as a new version, for a change that lives outside the
    fold's facts (e.g. reconciliation reaching a verdict as stream time passes). `view`, the
    canonical view already derived from these facts, saves deriving it again."""
    fs = derive(state) if view is None else dict(view)  # a copy: `view` may be emitted
    if fs is None:
        return None
    state["v"] += 1
    fs["version"] = state["v"]
    return fs


def _return_in_progress(rt: dict[str, Any]) -> bool:
    # Requested or approved, not rejected: the goods may still come back.
    return rt["rj"] is None and rt["r"] < RECEIVED


def is_closed(state: State, now_ms: int, retention_ms: int) -> bool:
    """True when the agent may tombstone this order's state.

    Closed means: fulfillment finished (delivered or cancelled), no return still in progress,
    no open shipment exception, money settled, and no event for ``retention_ms`` (which covers
    the returns window, since it counts from the last activity, delivery included). Time is
    event time (``now_ms`` from the agent's clock against event_time), so a backfill of old,
    finished orders closes them right away. An orphan
    whose order never arrived expires after ``retention_ms`` of silence as well, so state does
    not grow without bound.
    """
    last_activity = state["tmax"]
    if last_activity is None or now_ms - last_activity < retention_ms:
        return False
    fs = derive(state)
    if fs is None:
        return True
    return (
        fs["fulfillment_status"] in _TERMINAL_FULFILLMENT
        and not any(_return_in_progress(rt) for rt in state["rt"].values())
        and not fs["open_exceptions"]
        and fs["financial_status"] in _FINAL_FINANCIAL
    )
