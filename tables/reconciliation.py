"""Reconciliation of an order's money: what should have settled against what providers settled.

Pure and per order, driven by stream time only::

    inputs = inputs_from_fold(state, fs)   # or build OrderMoney / SettlementLine yourself
    result = review(inputs.order, inputs.settlements, inputs.refunds, now_ms)
    records, stored = advance(stored, result.open, now_ms)    # emit records, keep stored
    schedule_reevaluation(wheel, inputs.order_id, result.deadlines)

``evaluate`` returns the mismatches open *now*; ``transitions`` turns two such sets into the
records to emit (new or changed ``open`` ones and ``resolved`` ones), so evaluating the same
inputs twice (a replayed settlement report) emits nothing. Categories and their rules are in
``tables.reconciliation_rules``; thresholds in ``tables.reconciliation_config``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from tables.clock import Deadlines
from tables.reconciliation_config import DEFAULT_CONFIG, FeeBand, ReconciliationConfig
from tables.reconciliation_inputs import (
    OrderLineMoney,
    OrderMoney,
    ReconciliationInput,
    ReturnRefund,
    SettlementLine,
    dedupe_lines,
    expected_charge,
    inputs_from_fold,
    order_money,
    settlement_line,
)
from tables.reconciliation_position import CurrencyTotals, MoneyPosition, position, settled_totals
from tables.reconciliation_rules import CATEGORIES, order_mismatches, orphan_mismatches
from tables.records import ReconciliationMismatch

__all__ = [
    "CATEGORIES",
    "DEFAULT_CONFIG",
    "CurrencyTotals",
    "FeeBand",
    "Mismatch",
    "MoneyPosition",
    "OrderLineMoney",
    "OrderMoney",
    "ReconciliationConfig",
    "ReconciliationInput",
    "ReturnRefund",
    "Review",
    "SettlementLine",
    "advance",
    "carry_over",
    "deadlines_for",
    "dedupe_lines",
    "evaluate",
    "expected_charge",
    "inputs_from_fold",
    "is_reconciled",
    "order_money",
    "position",
    "review",
    "schedule_reevaluation",
    "settled_totals",
    "settlement_line",
    "transitions",
]

Mismatch = ReconciliationMismatch
OpenMismatches = Mapping[str, Mismatch]

# Fields that describe *when/why* a mismatch was seen rather than the difference itself.
_BOOKKEEPING = ("status", "detected_at", "resolved_at", "correlation_id")


class Review(NamedTuple):
    """One evaluation of an order: what is open, when to look again, whether money matches."""

    open: dict[str, Mismatch]
    deadlines: list[int]
    reconciled: bool


def review(
    order: OrderMoney | None,
    settlements: Iterable[SettlementLine],
    refunds: Iterable[ReturnRefund] = (),
    now_ms: int = 0,
    config: ReconciliationConfig = DEFAULT_CONFIG,
) -> Review:
    """``evaluate``, ``deadlines_for`` and ``is_reconciled`` in one pass (the agent's call)."""
    lines = dedupe_lines(settlements)
    if order is None:
        return Review(
            orphan_mismatches(lines, now_ms, config),
            _orphan_deadlines(lines, now_ms, config),
            False,
        )
    pos = position(order, lines, tuple(refunds), config)
    found = order_mismatches(pos, now_ms, config)
    return Review(found, _deadlines(pos, now_ms, config), not found and _matches(pos, config))


def evaluate(
    order: OrderMoney | None,
    settlements: Iterable[SettlementLine],
    refunds: Iterable[ReturnRefund] = (),
    now_ms: int = 0,
    config: ReconciliationConfig = DEFAULT_CONFIG,
) -> dict[str, Mismatch]:
    """The mismatches open at stream time ``now_ms``, by ``mismatch_id``.

    ``order`` None means the order is unknown: every settlement line past the orphan grace is
    an ``orphan_settlement``. Settlement lines are deduplicated by ``settlement_line_id``.
    """
    lines = dedupe_lines(settlements)
    if order is None:
        return orphan_mismatches(lines, now_ms, config)
    return order_mismatches(position(order, lines, tuple(refunds), config), now_ms, config)


def _same_difference(a: Mismatch, b: Mismatch) -> bool:
    return all(a[k] == b[k] for k in a if k not in _BOOKKEEPING)  # type: ignore[literal-required]


def transitions(
    previous_open: OpenMismatches, current_open: OpenMismatches, now_ms: int
) -> list[Mismatch]:
    """Records to emit when the open set goes from ``previous_open`` to ``current_open``.

    New ids are emitted ``open``; ids whose amounts changed are re-emitted ``open`` keeping
    their first ``detected_at``; ids that cleared are emitted ``resolved`` at ``now_ms``;
    unchanged ones emit nothing. Sorted by ``mismatch_id`` for a stable output order.
    """
    records: list[Mismatch] = []
    for mismatch_id in sorted(current_open.keys() | previous_open.keys()):
        before = previous_open.get(mismatch_id)
        now = current_open.get(mismatch_id)
        if now is None:
            assert before is not None
            resolved: Mismatch = {**before, "status": "resolved", "resolved_at": now_ms}
            records.append(resolved)
        elif before is None:
            records.append({**now, "status": "open", "resolved_at": None})
        elif not _same_difference(before, now):
            records.append(_keep_detection(before, now))
    return records


def _keep_detection(before: Mismatch, now: Mismatch) -> Mismatch:
    return {
        **now,
        "status": "open",
        "detected_at": before["detected_at"],
        "correlation_id": before["correlation_id"],
        "resolved_at": None,
    }


def carry_over(previous_open: OpenMismatches, current_open: OpenMismatches) -> dict[str, Mismatch]:
    """The open set to store: ``current_open`` with each surviving id's first detection."""
    stored: dict[str, Mismatch] = {}
    for mismatch_id, now in sorted(current_open.items()):
        before = previous_open.get(mismatch_id)
        stored[mismatch_id] = now if before is None else _keep_detection(before, now)
    return stored


def advance(
    previous_open: OpenMismatches, current_open: OpenMismatches, now_ms: int
) -> tuple[list[Mismatch], dict[str, Mismatch]]:
    """``transitions`` and ``carry_over`` together: (records to emit, open set to store)."""
    return transitions(previous_open, current_open, now_ms), carry_over(previous_open, current_open)


def deadlines_for(
    order: OrderMoney | None,
    settlements: Iterable[SettlementLine],
    refunds: Iterable[ReturnRefund] = (),
    now_ms: int = 0,
    config: ReconciliationConfig = DEFAULT_CONFIG,
) -> list[int]:
    """Stream times after ``now_ms`` at which ``evaluate`` may change with no new event.

    These are the lag and grace expiries (unsettled, per-shipment capture, missing/short
    refund, orphan and refund-without-return grace); sorted, without duplicates.
    """
    lines = dedupe_lines(settlements)
    if order is None:
        return _orphan_deadlines(lines, now_ms, config)
    return _deadlines(position(order, lines, tuple(refunds), config), now_ms, config)


def _orphan_deadlines(
    lines: tuple[SettlementLine, ...], now_ms: int, config: ReconciliationConfig
) -> list[int]:
    return sorted({t for ln in lines if (t := ln.event_time + config.orphan_grace_ms) > now_ms})


def _deadlines(pos: MoneyPosition, now_ms: int, config: ReconciliationConfig) -> list[int]:
    order = pos.order
    lag = config.lag_for(pos.provider)
    times: set[int] = set()
    if order.first_shipped_at is not None:
        times.add(order.first_shipped_at + lag)
    if order.shipped_at is not None:
        times.add(order.shipped_at + lag)
    for rf in pos.refunds:
        if rf.refunded_at is not None:
            times.add(rf.refunded_at + config.refund_lag_ms)
    for ln in pos.refund_lines:
        times.add(ln.event_time + config.orphan_grace_ms)
    priced = [ln for ln in pos.all_lines if ln.transaction_type in ("charge", "fee")]
    fees = sum(1 for ln in priced if ln.transaction_type == "fee")
    if fees and fees * 2 != len(priced):  # fee and charge lines do not pair up (yet)
        times.add(max(ln.event_time for ln in priced) + config.fee_settle_ms)
    return sorted(t for t in times if t > now_ms)


def schedule_reevaluation(
    wheel: Deadlines,
    order_key: str,
    deadlines: Iterable[int],
    payload: dict[str, Any] | None = None,
) -> None:
    """Keep one deadline per order on ``wheel``: its next re-evaluation, or none.

    The id is ``"reconcile:" + order_key`` so re-scheduling replaces the previous one; the
    payload defaults to ``{"order_id": order_key}``.
    """
    deadline_id = f"reconcile:{order_key}"
    due = min(deadlines, default=None)
    if due is None:
        wheel.cancel(deadline_id)
    else:
        wheel.schedule(
            deadline_id, due, payload if payload is not None else {"order_id": order_key}
        )


def is_reconciled(
    order: OrderMoney | None,
    settlements: Iterable[SettlementLine],
    refunds: Iterable[ReturnRefund] = (),
    now_ms: int = 0,
    config: ReconciliationConfig = DEFAULT_CONFIG,
) -> bool:
    """True when the order's money fully matches: the expected charge is settled (net of any
    refund for cancelled units), every approved refund is issued and settled, nothing is in a
    foreign currency, and no mismatch is open. A chargeback is never reconciled."""
    if order is None:
        return False
    pos = position(order, dedupe_lines(settlements), tuple(refunds), config)
    return not order_mismatches(pos, now_ms, config) and _matches(pos, config)


def _matches(pos: MoneyPosition, config: ReconciliationConfig) -> bool:
    tolerance = config.amount_tolerance_minor
    return (
        not pos.foreign
        and not pos.foreign_charged
        and not pos.refund_amount_unknown
        and abs(pos.net_charged - pos.expected_charge) <= tolerance
        and pos.issued_refund == pos.approved_refund
        and abs(pos.return_refunds - pos.issued_refund) <= tolerance
    )
