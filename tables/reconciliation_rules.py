"""The mismatch rules: one function per category over an order's ``MoneyPosition``.

Each rule adds at most one open ``ReconciliationMismatch`` per order to ``found``, keyed by
its stable ``mismatch_id`` (``order_id:category``; orphans ``settlement_line_id:category``).
Rules never look at the wall clock: "after the lag" means ``now_ms`` (stream time) reached it.
Amounts are in the order currency; E = expected charge, C = net settled charges.

unsettled              first unit shipped >= settlement lag (per provider) ago, E > 0, no
                       charge settled in any currency. expected E, actual 0.
orphan_settlement      the order is unknown ``orphan_grace_ms`` after the line's event time.
                       One per line; expected 0, actual the line amount.
amount_mismatch        C differs from E by more than the tolerance. Over-charges open at
                       once; short ones at once too, except for per-shipment providers
                       (Amazon), which get until every shipment has a charge or the lag
                       after the last shipment. Refunds no return explains first offset an
                       over-charge (refund of cancelled units). Skipped when a charge was
                       settled in another currency (currency_mismatch says it).
duplicate_settlement   equal lines (type charge or refund, amount, currency, provider) under
                       different line ids posted within ``duplicate_window_ms``, and the order
                       is over-settled. expected one line, actual the group. When removing
                       the extra lines explains the whole difference, no amount/refund
                       mismatch is reported besides it. Charge and refund duplicates share
                       the id; the refund one wins.
refund_without_return  refunds settled beyond every approved refund, no approved return at
                       all, ``orphan_grace_ms`` after the refund line (the return may be late).
refund_mismatch        over-refund: at once. Short refund: once the refunds issued at least
                       ``refund_lag_ms`` ago exceed what settled.
missing_refund         nothing refunded while refunds issued >= ``refund_lag_ms`` ago exist.
currency_mismatch      a line in another currency with no FX adjustment in its settlement.
                       expected E, actual that currency's charges; currency = order currency.
fee_anomaly            per (provider, currency) with both charges and fees settled: |fees -
                       band fee of each charge| beyond the band tolerance. Judged at once
                       when there is one fee line per charge, else ``fee_settle_ms`` after
                       the newest of them (a fee line may still be on its way).
chargeback             any chargeback not reversed; expected 0, actual its magnitude.
"""

from __future__ import annotations

from collections.abc import Iterable

from tables.reconciliation_config import ReconciliationConfig
from tables.reconciliation_inputs import SettlementLine
from tables.reconciliation_position import MoneyPosition
from tables.records import ReconciliationMismatch

__all__ = ["CATEGORIES", "duplicate_groups", "order_mismatches", "orphan_mismatches"]

Found = dict[str, ReconciliationMismatch]

CATEGORIES = (
    "unsettled",
    "orphan_settlement",
    "amount_mismatch",
    "duplicate_settlement",
    "refund_without_return",
    "refund_mismatch",
    "missing_refund",
    "currency_mismatch",
    "fee_anomaly",
    "chargeback",
)


def mismatch(
    mismatch_id: str,
    order_id: str | None,
    category: str,
    expected: int,
    actual: int,
    currency: str,
    provider: str | None,
    lines: Iterable[SettlementLine],
    fallback_correlation_id: str,
    now_ms: int,
) -> ReconciliationMismatch:
    involved = sorted(lines, key=lambda ln: (ln.posted_time, ln.settlement_line_id))
    # The newest involved line is the event that made the difference visible.
    correlation_id = next(
        (ln.correlation_id for ln in reversed(involved) if ln.correlation_id),
        fallback_correlation_id,
    )
    return {
        "mismatch_id": mismatch_id,
        "order_id": order_id,
        "category": category,
        "status": "open",
        "expected": expected,
        "actual": actual,
        "difference": actual - expected,
        "currency": currency,
        "provider": provider,
        "settlement_ids": sorted({ln.settlement_id for ln in involved}),
        "correlation_id": correlation_id,
        "detected_at": now_ms,
        "resolved_at": None,
    }


def _add(
    found: Found,
    pos: MoneyPosition,
    category: str,
    expected: int,
    actual: int,
    lines: Iterable[SettlementLine],
    now_ms: int,
    *,
    currency: str | None = None,
    provider: str | None = None,
) -> None:
    order = pos.order
    mismatch_id = f"{order.order_id}:{category}"
    found[mismatch_id] = mismatch(
        mismatch_id,
        order.order_id,
        category,
        expected,
        actual,
        currency or order.currency,
        provider or pos.provider,
        lines,
        order.correlation_id,
        now_ms,
    )


def orphan_mismatches(
    lines: Iterable[SettlementLine], now_ms: int, config: ReconciliationConfig
) -> Found:
    """Lines whose order is still unknown ``orphan_grace_ms`` after they happened, one each.

    Keyed by settlement_line_id (the schema's rule for orphans): lines with no order id at all
    cannot be grouped by order.
    """
    found: Found = {}
    for line in lines:
        if line.event_time + config.orphan_grace_ms > now_ms:
            continue
        mismatch_id = f"{line.settlement_line_id}:orphan_settlement"
        found[mismatch_id] = mismatch(
            mismatch_id,
            line.order_id,
            "orphan_settlement",
            0,
            line.amount,
            line.currency,
            line.provider,
            [line],
            line.correlation_id,
            now_ms,
        )
    return found


def duplicate_groups(
    lines: Iterable[SettlementLine], config: ReconciliationConfig
) -> list[tuple[SettlementLine, ...]]:
    """Runs of equal lines (type, currency, provider, amount) posted within the window."""
    ordered = sorted(
        lines,
        key=lambda ln: (
            ln.transaction_type,
            ln.currency,
            ln.provider,
            ln.amount,
            ln.posted_time,
            ln.settlement_line_id,
        ),
    )
    groups: list[tuple[SettlementLine, ...]] = []
    run: list[SettlementLine] = []
    for line in ordered:
        if run:
            head = run[-1]
            same = (head.transaction_type, head.currency, head.provider, head.amount) == (
                line.transaction_type,
                line.currency,
                line.provider,
                line.amount,
            )
            if same and line.posted_time - head.posted_time <= config.duplicate_window_ms:
                run.append(line)
                continue
            if len(run) > 1:
                groups.append(tuple(run))
        run = [line]
    if len(run) > 1:
        groups.append(tuple(run))
    return groups


def _extra(group: tuple[SettlementLine, ...]) -> int:
    """What a duplicate group settled beyond its first line (magnitude)."""
    return abs(group[0].amount) * (len(group) - 1)


def order_mismatches(pos: MoneyPosition, now_ms: int, config: ReconciliationConfig) -> Found:
    found: Found = {}
    tolerance = config.amount_tolerance_minor
    _currency(found, pos, now_ms)
    _charges(found, pos, now_ms, config, tolerance)
    _refunds(found, pos, now_ms, config, tolerance)
    _fees(found, pos, now_ms, config)
    _chargebacks(found, pos, now_ms)
    return found


def _currency(found: Found, pos: MoneyPosition, now_ms: int) -> None:
    if not pos.foreign:
        return
    # Report the first foreign currency (sorted) by its charges: what the order should have
    # been charged in its own currency against what was charged in the other one.
    currency = min(ln.currency for ln in pos.foreign)
    lines = [ln for ln in pos.foreign if ln.currency == currency]
    actual = sum(ln.amount for ln in lines if ln.transaction_type == "charge")
    _add(
        found,
        pos,
        "currency_mismatch",
        pos.expected_charge,
        actual,
        pos.foreign,
        now_ms,
        provider=lines[0].provider,
    )


def _charges(
    found: Found, pos: MoneyPosition, now_ms: int, config: ReconciliationConfig, tolerance: int
) -> None:
    order, expected = pos.order, pos.expected_charge
    if pos.foreign_charged:
        return  # settled in another currency: currency_mismatch (or the FX line) says it all
    charge_lines = pos.charge_lines
    if pos.charged <= 0:
        lag = config.lag_for(pos.provider)
        shipped = order.first_shipped_at
        if expected > 0 and shipped is not None and shipped + lag <= now_ms:
            _add(found, pos, "unsettled", expected, pos.charged, charge_lines, now_ms)
        return
    net = pos.net_charged
    if net > expected + tolerance:
        for group in duplicate_groups(charge_lines, config):
            _add(
                found,
                pos,
                "duplicate_settlement",
                group[0].amount,
                sum(ln.amount for ln in group),
                group,
                now_ms,
            )
            if abs(net - _extra(group) - expected) <= tolerance:
                return  # the duplicate is the whole difference: no separate amount mismatch
            break
    elif net >= expected - tolerance or not _undercharge_final(pos, now_ms, config):
        return
    involved = charge_lines + (pos.refund_lines if pos.cancel_refund else ())
    _add(found, pos, "amount_mismatch", expected, net, involved, now_ms)


def _undercharge_final(pos: MoneyPosition, now_ms: int, config: ReconciliationConfig) -> bool:
    """Whether a short charge can still be completed by a later charge line.

    Most providers capture the whole order at once; providers that charge per shipment
    (Amazon) get until every shipment has a charge line, or the lag after the last one.
    """
    if pos.provider not in config.per_shipment_capture:
        return True
    order = pos.order
    if order.shipped_at is None:
        return False
    if len(pos.charge_lines) >= order.shipment_count:
        return True
    return order.shipped_at + config.lag_for(pos.provider) <= now_ms


def _refunds(
    found: Found, pos: MoneyPosition, now_ms: int, config: ReconciliationConfig, tolerance: int
) -> None:
    settled = pos.return_refunds
    refund_lines = pos.refund_lines
    if settled > pos.approved_refund + tolerance:
        excess = settled - pos.approved_refund
        for group in duplicate_groups(refund_lines, config):
            _add(
                found,
                pos,
                "duplicate_settlement",
                abs(group[0].amount),
                sum(abs(ln.amount) for ln in group),
                group,
                now_ms,
            )
            if abs(excess - _extra(group)) <= tolerance:
                return
            break
        if pos.refund_amount_unknown:
            return  # an approved return may explain it once its amount is known
        if not pos.refunds:
            # The return may simply not have arrived yet: wait as for an orphan.
            latest = max(ln.event_time for ln in refund_lines)
            if latest + config.orphan_grace_ms <= now_ms:
                _add(found, pos, "refund_without_return", 0, settled, refund_lines, now_ms)
            return
        _add(found, pos, "refund_mismatch", pos.approved_refund, settled, refund_lines, now_ms)
        return
    due = pos.due_refund(now_ms, config)
    if settled <= tolerance:
        if due > 0:
            _add(found, pos, "missing_refund", due, settled, refund_lines, now_ms)
        return
    # Short: a later refund line may still top it up, so only refunds issued at least the
    # refund lag ago count as due.
    if settled < due - tolerance:
        _add(found, pos, "refund_mismatch", pos.issued_refund, settled, refund_lines, now_ms)


def _fees(found: Found, pos: MoneyPosition, now_ms: int, config: ReconciliationConfig) -> None:
    by_key: dict[tuple[str, str], tuple[list[SettlementLine], list[SettlementLine]]] = {}
    for line in pos.all_lines:
        if line.transaction_type in ("charge", "fee"):
            slot = 0 if line.transaction_type == "charge" else 1
            by_key.setdefault((line.provider, line.currency), ([], []))[slot].append(line)
    for (provider, currency), (charges, fees) in sorted(by_key.items()):
        band = config.fee_bands.get(provider)
        if (
            band is None
            or not charges
            or not fees
            or not _fees_complete(charges, fees, now_ms, config)
        ):
            continue
        band_fee = sum(band.fee_for(ln.amount) for ln in charges if ln.amount > 0)
        actual = abs(sum(ln.amount for ln in fees))
        if abs(actual - band_fee) > band.tolerance_for(band_fee):
            _add(
                found,
                pos,
                "fee_anomaly",
                band_fee,
                actual,
                fees,
                now_ms,
                currency=currency,
                provider=provider,
            )
            return


def _fees_complete(
    charges: list[SettlementLine],
    fees: list[SettlementLine],
    now_ms: int,
    config: ReconciliationConfig,
) -> bool:
    """Whether every charge's fee has arrived, so a fee total can be judged without flapping.

    One fee line per charge is the common shape: judge at once. Otherwise (a charge whose fee
    line is still in transit, or several fee lines per charge as Amazon reports them) wait
    until the newest of these lines is ``fee_settle_ms`` old in stream time.
    """
    if len(fees) == len(charges):
        return True
    newest = max(ln.event_time for ln in (*charges, *fees))
    return newest + config.fee_settle_ms <= now_ms


def _chargebacks(found: Found, pos: MoneyPosition, now_ms: int) -> None:
    lines = [ln for ln in pos.all_lines if ln.transaction_type == "chargeback"]
    if not lines:
        return
    home = [ln for ln in lines if ln.currency == pos.order.currency] or lines
    amount = abs(sum(ln.amount for ln in home))
    if amount:
        _add(
            found,
            pos,
            "chargeback",
            0,
            amount,
            home,
            now_ms,
            currency=home[0].currency,
            provider=home[0].provider,
        )
