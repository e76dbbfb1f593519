"""An order's money position: what should be settled and what was, per currency.

Sign conventions: providers report charges positive and refunds, fees and chargebacks
negative (some report them positive); charges and adjustments are summed signed, refunds and
chargebacks as magnitudes per line, fees as the magnitude of their signed sum (a fee credit on
a refund reduces the fee).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tables.reconciliation_config import ReconciliationConfig
from tables.reconciliation_inputs import (
    OrderMoney,
    ReturnRefund,
    SettlementLine,
    expected_charge,
)

__all__ = ["CurrencyTotals", "MoneyPosition", "position", "settled_totals"]


# Value objects built anew for every evaluation of an order are plain slots dataclasses, not
# frozen ones: a frozen dataclass sets each field through object.__setattr__, which made
# their construction ~3x dearer (~7% of the replay's fold). Nothing mutates them.
@dataclass(slots=True)
class CurrencyTotals:
    charges: int = 0
    refunds: int = 0
    fees: int = 0
    adjustments: int = 0
    chargebacks: int = 0
    reserves: int = 0


def settled_totals(lines: Iterable[SettlementLine]) -> dict[str, CurrencyTotals]:
    """Settled charges, refunds, fees, adjustments, chargebacks and reserves per currency."""
    sums: dict[str, list[int]] = {}
    for line in lines:
        acc = sums.setdefault(line.currency, [0, 0, 0, 0, 0, 0])
        kind, amount = line.transaction_type, line.amount
        if kind == "charge":
            acc[0] += amount
        elif kind == "refund":
            acc[1] += abs(amount)
        elif kind == "fee":
            acc[2] += amount
        elif kind == "adjustment":
            acc[3] += amount
        elif kind == "chargeback":
            acc[4] += abs(amount)
        elif kind == "reserve":
            acc[5] += amount
    return {
        currency: CurrencyTotals(acc[0], acc[1], abs(acc[2]), acc[3], acc[4], acc[5])
        for currency, acc in sorted(sums.items())
    }


@dataclass(slots=True)
class MoneyPosition:
    """Figures the rules compare, all in the order's currency unless named otherwise.

    ``cancel_refund`` is the part of the settled refunds that no approved return explains but
    an over-charge does (a refund for units cancelled after capture, or for a duplicate
    capture): it is netted out of both sides, so ``net_charged`` and ``return_refunds`` are
    what the charge rules and the return rules compare.
    """

    order: OrderMoney
    expected_charge: int
    charged: int  # charges in the order currency, signed sum
    refunded: int  # refunds in the order currency, magnitudes
    all_lines: tuple[SettlementLine, ...]
    charge_lines: tuple[SettlementLine, ...]  # charges in the order currency
    refund_lines: tuple[SettlementLine, ...]  # refunds in the order currency
    foreign: tuple[SettlementLine, ...]  # other currency and no FX line in their settlement
    foreign_charged: bool  # some charge settled in another currency (FX line or not)
    refunds: tuple[ReturnRefund, ...]  # approved returns with a known amount, order currency
    refund_amount_unknown: bool  # an approved return has no refund amount yet
    approved_refund: int
    issued_refund: int  # of approved_refund, what the returns platform already refunded
    cancel_refund: int
    net_charged: int
    return_refunds: int
    provider: str | None  # who settles (or is expected to settle) this order

    @property
    def totals(self) -> dict[str, CurrencyTotals]:
        """Every kind of settled money, per currency."""
        return settled_totals(self.all_lines)

    def due_refund(self, now_ms: int, config: ReconciliationConfig) -> int:
        """Refunds issued at least ``refund_lag_ms`` ago, which should have settled by now."""
        return sum(
            rf.amount or 0
            for rf in self.refunds
            if rf.refunded_at is not None and rf.refunded_at + config.refund_lag_ms <= now_ms
        )


def _is_fx_line(line: SettlementLine, home: str, config: ReconciliationConfig) -> bool:
    if line.transaction_type != "adjustment":
        return False
    if line.description is None:
        # Fold facts keep no description: an adjustment in the order currency within the
        # same settlement is taken to be the conversion line.
        return line.currency == home
    text = line.description.lower()
    return any(marker in text for marker in config.fx_markers)


def _provider(
    order: OrderMoney, lines: tuple[SettlementLine, ...], config: ReconciliationConfig
) -> str | None:
    known = [ln for ln in lines if ln.provider != "unknown"]
    charges = [ln for ln in known if ln.transaction_type == "charge"]
    if charges or known:
        return (charges or known)[0].provider
    for source in order.source_systems:
        provider = config.source_providers.get(source)
        if provider is not None:
            return provider
    return None


def position(
    order: OrderMoney,
    settlements: tuple[SettlementLine, ...],
    refunds: tuple[ReturnRefund, ...],
    config: ReconciliationConfig,
) -> MoneyPosition:
    home = order.currency
    # One pass over the lines: this runs for every re-evaluation on the agent's hot path.
    charge_lines: list[SettlementLine] = []
    refund_lines: list[SettlementLine] = []
    other_lines: list[SettlementLine] = []
    fx_settlements: set[str] = set()
    charged = refunded = 0
    for line in settlements:
        if line.currency != home:
            other_lines.append(line)
            continue
        kind = line.transaction_type
        if kind == "charge":
            charge_lines.append(line)
            charged += line.amount
        elif kind == "refund":
            refund_lines.append(line)
            refunded += abs(line.amount)
        elif kind == "adjustment" and _is_fx_line(line, home, config):
            fx_settlements.add(line.settlement_id)
    foreign: tuple[SettlementLine, ...] = ()
    if other_lines:
        fx_settlements.update(
            ln.settlement_id for ln in other_lines if _is_fx_line(ln, home, config)
        )
        foreign = tuple(ln for ln in other_lines if ln.settlement_id not in fx_settlements)
    approved: list[ReturnRefund] = []
    approved_refund = issued_refund = 0
    refund_amount_unknown = False
    for rf in refunds:
        if rf.amount is None:
            refund_amount_unknown = True
        elif rf.currency is None or rf.currency == home:
            approved.append(rf)
            approved_refund += rf.amount
            if rf.refunded_at is not None:
                issued_refund += rf.amount
    expected = expected_charge(order, config)
    over_charge = max(0, charged - expected)
    unexplained_refund = max(0, refunded - approved_refund)
    cancel_refund = min(over_charge, unexplained_refund)
    return MoneyPosition(
        order=order,
        expected_charge=expected,
        charged=charged,
        refunded=refunded,
        all_lines=settlements,
        charge_lines=tuple(charge_lines),
        refund_lines=tuple(refund_lines),
        foreign=foreign,
        foreign_charged=any(ln.transaction_type == "charge" for ln in other_lines),
        refunds=tuple(approved),
        refund_amount_unknown=refund_amount_unknown,
        approved_refund=approved_refund,
        issued_refund=issued_refund,
        cancel_refund=cancel_refund,
        net_charged=charged - cancel_refund,
        return_refunds=refunded - cancel_refund,
        provider=_provider(order, settlements, config),
    )
