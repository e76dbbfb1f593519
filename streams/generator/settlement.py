"""Settlement books: one settlement (payout) per provider and period, lines posted after a lag.

Ids are derived from (seed, provider, period) with a hash rather than the story's random
stream, so every story that posts into the same payout gets the same settlement_id.
"""

from __future__ import annotations

import hashlib
import random

from streams.generator.thresholds import SETTLEMENT_LAG_MS, SETTLEMENT_PERIOD_MS

# How each provider describes its lines in reports.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("amazon", "charge"): "Principal",
    ("amazon", "fee"): "Commission",
    ("amazon", "refund"): "Refund - Principal",
    ("amazon", "chargeback"): "Chargeback",
    ("stripe", "charge"): "Payment for order",
    ("stripe", "fee"): "Stripe processing fees",
    ("stripe", "refund"): "REFUND FOR CHARGE",
    ("stripe", "chargeback"): "Chargeback withdrawal",
    ("shopify_payments", "charge"): "charge",
    ("shopify_payments", "fee"): "Shopify Payments fee",
    ("shopify_payments", "refund"): "refund",
    ("shopify_payments", "chargeback"): "dispute",
    ("paypal", "charge"): "Express Checkout Payment",
    ("paypal", "fee"): "PayPal fee",
    ("paypal", "refund"): "Payment Refund",
    ("paypal", "chargeback"): "Chargeback",
}

SETTLEMENT_SOURCES: dict[str, str] = {
    "amazon": "amazon-settlement-report",
    "stripe": "stripe",
    "shopify_payments": "shopify-payments",
    "paypal": "paypal",
}


def period_of(provider: str, posted: int) -> tuple[int, int]:
    """The settlement period containing ``posted``: [start, end] in epoch millis (end incl.)."""
    length = SETTLEMENT_PERIOD_MS[provider]
    start = posted - posted % length
    return start, start + length - 1


def settlement_id(seed: int, provider: str, period_start: int) -> str:
    digest = hashlib.sha256(f"{seed}:{provider}:{period_start}".encode()).hexdigest()
    if provider == "stripe":
        return f"po_{digest[:24]}"
    if provider == "paypal":
        return f"PPSTL-{digest[:12].upper()}"
    # Amazon settlement ids and Shopify payout ids are numeric.
    return str(int(digest[:15], 16) % 10**11).rjust(11, "1")


def lag(rng: random.Random, provider: str) -> int:
    low, high = SETTLEMENT_LAG_MS[provider]
    return rng.randint(low, high)


def description(provider: str, transaction_type: str) -> str | None:
    return DESCRIPTIONS.get((provider, transaction_type))
