"""Thresholds of the reconciliation rules, as one frozen, documented config object.

The defaults match ``streams/generator/thresholds.py`` (the ground truth the generator writes),
copied rather than imported because ``tables`` depends on nothing outside the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

from tables.money import BPS_DENOMINATOR, apply_bps

__all__ = ["DEFAULT_CONFIG", "FeeBand", "ReconciliationConfig"]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class FeeBand:
    """What a provider charges per charge line: ``bps`` of the amount plus ``fixed`` minor units.

    A settled fee is anomalous when it differs from the band fee by more than
    ``max(tolerance_minor, band_fee * tolerance_bps / 10000)``.
    """

    bps: int
    fixed: int = 0
    tolerance_bps: int = 1_000
    tolerance_minor: int = 5

    def fee_for(self, charge: int) -> int:
        """Band fee (magnitude) for one charge line, rounded half up per transaction."""
        return apply_bps(abs(charge), self.bps) + self.fixed

    def tolerance_for(self, band_fee: int) -> int:
        return max(self.tolerance_minor, band_fee * self.tolerance_bps // BPS_DENOMINATOR)


def _frozen(mapping: Mapping[str, _V]) -> Mapping[str, _V]:
    # A read-only view, so the shared DEFAULT_CONFIG cannot be changed by one caller.
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ReconciliationConfig:
    """Every number the rules use; stream (event) time in epoch millis throughout.

    settlement_lag_ms         provider -> how long after the first unit shipped a charge may
                              take to show up in a settlement before the order is `unsettled`;
                              `default_settlement_lag_ms` for providers not listed.
    refund_lag_ms             how long after a return is refunded the refund may take to settle
                              before `missing_refund` (or a short `refund_mismatch`) opens.
    orphan_grace_ms           how long a settlement line may wait for its order to show up
                              before it is an `orphan_settlement`.
    amount_tolerance_minor    differences up to this many minor units are not mismatches.
    duplicate_window_ms       two equal lines (order, type, amount, currency, provider) posted
                              within this of each other are candidates for
                              `duplicate_settlement` (only reported if they over-settle).
    fee_bands                 provider -> FeeBand; providers without a band are never
                              `fee_anomaly`.
    fee_settle_ms             when fee lines and charge lines do not pair up one to one, how
                              long after the newest of them the fees are judged anyway.
    per_shipment_capture      providers that settle one charge per shipment (Amazon): an
                              under-charge waits until every shipment has a charge line or
                              the settlement lag has passed, instead of opening on the
                              first charge.
    source_providers          order source_system -> provider, used to pick the lag for an
                              order nothing has been settled for yet.
    fx_markers                lowercase words that mark an `adjustment` line as currency
                              conversion (description); see rules `currency_mismatch`.
    proration                 "allocate": cancelled value = unit price x cancelled units plus
                              their largest-remainder share of tax, shipping and discounts.
                              "floor": total x kept merchandise value // full value, the
                              convention of the fold's `expected_charge` and the generator.
    """

    settlement_lag_ms: Mapping[str, int] = field(
        default_factory=lambda: _frozen(
            {
                "amazon": 5 * DAY_MS,
                "shopify_payments": 5 * DAY_MS,
                "stripe": 5 * DAY_MS,
                "paypal": 5 * DAY_MS,
            }
        )
    )
    default_settlement_lag_ms: int = 5 * DAY_MS
    refund_lag_ms: int = 5 * DAY_MS
    orphan_grace_ms: int = 60 * MINUTE_MS
    amount_tolerance_minor: int = 0
    duplicate_window_ms: int = 7 * DAY_MS
    fee_bands: Mapping[str, FeeBand] = field(
        default_factory=lambda: _frozen(
            {
                "stripe": FeeBand(290, 30),
                "shopify_payments": FeeBand(290, 30),
                "paypal": FeeBand(349, 49),
                "amazon": FeeBand(1_500, 0),
            }
        )
    )
    fee_settle_ms: int = 12 * HOUR_MS
    per_shipment_capture: frozenset[str] = frozenset({"amazon"})
    source_providers: Mapping[str, str] = field(
        default_factory=lambda: _frozen(
            {
                "amazon": "amazon",
                "shopify": "shopify_payments",
                "stripe": "stripe",
                "paypal": "paypal",
            }
        )
    )
    fx_markers: tuple[str, ...] = ("fx", "currency conversion", "exchange")
    # "floor" is the fold's own definition of expected_charge (FulfillmentState) and the
    # generator's: one definition, no 1-cent false amount_mismatch on partial cancellations.
    proration: Literal["allocate", "floor"] = "floor"

    def lag_for(self, provider: str | None) -> int:
        if provider is None:
            return self.default_settlement_lag_ms
        return self.settlement_lag_ms.get(provider, self.default_settlement_lag_ms)


DEFAULT_CONFIG = ReconciliationConfig()
