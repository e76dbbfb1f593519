"""Thresholds the ground truth assumes, as named constants.

The reconciliation and SLA engines should use the same numbers (or import them from here) so
that ``truth.json`` and their output agree. Every time is event time in epoch millis.
"""

from __future__ import annotations

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Stream time = max event_time seen - this (matches Settings.allowed_lateness_ms). A deadline
# only counts as passed in the truth when it is at or before the final stream time.
ALLOWED_LATENESS_MS = 5 * MINUTE_MS

# --- SLA rules (expected breaches) ---
# order_not_allocated: accepted, and no unit allocated within this (unless cancelled first).
ALLOCATION_SLA_MS = 24 * HOUR_MS
# ship_by_breached: promised_ship_by passed before every non-cancelled unit shipped.
# delivery_late: promised_deliver_by passed before every non-cancelled unit was delivered.
# (both deadlines come from the order event itself, no constant needed)
# shipment_exception_open: a shipment stays in exception longer than this.
EXCEPTION_SLA_MS = 24 * HOUR_MS
# refund_overdue: a return was received and the return is not refunded within this.
REFUND_SLA_MS = 72 * HOUR_MS
# orphan_event: an event keyed by an order_id whose order never arrived within this.
ORPHAN_GRACE_MS = 60 * MINUTE_MS

# --- reconciliation (expected mismatch categories) ---
# unsettled: first unit shipped, no charge settled within this.
SETTLEMENT_GRACE_MS = 5 * DAY_MS
# missing_refund: a return was refunded (returns platform), no refund settled within this.
REFUND_SETTLEMENT_GRACE_MS = 5 * DAY_MS
# amount_mismatch / refund_mismatch: any difference in minor units counts.
AMOUNT_TOLERANCE_MINOR = 0
# fee_anomaly: |settled fee - band fee| > max(FEE_TOLERANCE_MINOR, band fee * bps / 10000).
FEE_TOLERANCE_BPS = 1_000
FEE_TOLERANCE_MINOR = 5

# Provider fee bands per charge line: (basis points of the charge, fixed minor units).
# Settled as a separate negative "fee" line. Refunds and chargebacks carry no fee line.
FEE_BANDS: dict[str, tuple[int, int]] = {
    "stripe": (290, 30),
    "shopify_payments": (290, 30),
    "paypal": (349, 49),
    "amazon": (1_500, 0),  # referral fee ("Commission")
}

# Settlement (payout) period per provider; settlement_id is one per provider and period.
SETTLEMENT_PERIOD_MS: dict[str, int] = {
    "stripe": DAY_MS,
    "shopify_payments": DAY_MS,
    "paypal": DAY_MS,
    "amazon": 14 * DAY_MS,
}

# Lag between the money event (capture at shipment, refund issued) and the posted line.
SETTLEMENT_LAG_MS: dict[str, tuple[int, int]] = {
    "stripe": (2 * DAY_MS, 2 * DAY_MS + 6 * HOUR_MS),
    "shopify_payments": (1 * DAY_MS, 3 * DAY_MS),
    "paypal": (10 * MINUTE_MS, 1 * DAY_MS),
    "amazon": (2 * HOUR_MS, 2 * DAY_MS),
}


def band_fee(provider: str, amount: int) -> int:
    """The fee (magnitude, minor units) the provider's band charges on a charge of ``amount``.

    Rounded half up, as providers do per transaction.
    """
    bps, fixed = FEE_BANDS[provider]
    return (abs(amount) * bps + 5_000) // 10_000 + fixed


def fee_is_anomalous(provider: str, amount: int, fee: int) -> bool:
    expected = band_fee(provider, amount)
    tolerance = max(FEE_TOLERANCE_MINOR, expected * FEE_TOLERANCE_BPS // 10_000)
    return abs(abs(fee) - expected) > tolerance


def prorate(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded half up (pro-rating money by merchandise value)."""
    if whole <= 0:
        return 0
    return (total * part + whole // 2) // whole
