"""What to generate: the configuration, the story mix and parsers for the CLI's text forms."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.generator.thresholds import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

DEFAULT_START = "2026-11-01T00:00:00Z"

# Share of orders per story. Money and SLA edge cases are rare, as in real traffic, but every
# one of them shows up in a few hundred orders.
DEFAULT_MIX: dict[str, float] = {
    "happy": 0.495,
    "split": 0.08,
    "partial_cancel": 0.04,
    "cancel": 0.03,
    "backorder": 0.04,
    "substitution": 0.02,
    "exception": 0.04,
    "return_partial": 0.04,
    "return_full": 0.03,
    "return_rejected": 0.01,
    "late_delivery": 0.02,
    "ship_late": 0.02,
    "short_payment": 0.015,
    "duplicate_settlement": 0.015,
    "missing_refund": 0.01,
    "refund_mismatch": 0.01,
    "refund_overdue": 0.01,
    "refund_without_return": 0.01,
    "currency_mismatch": 0.01,
    "fee_anomaly": 0.01,
    "chargeback": 0.01,
    "unsettled": 0.01,
    "over_ship": 0.005,
    "orphan": 0.02,
}

# Arrival disorder and noise (shares of events / orders).
DUPLICATE_RATE = 0.015  # at-least-once redelivery of an event (same event_id, same bytes)
LATE_RATE = 0.03  # an event held up for minutes to hours (feed outage, batch upload, retries)
ORDER_FEED_LAG_RATE = 0.04  # orders whose placed event arrives after the warehouse's events
# Deliberately invalid records per order (about 0.2% of events), at least MIN_BAD.
BAD_PER_ORDER = 0.025
MIN_BAD = 4

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_MS = {"ms": 1, "s": SECOND_MS, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}


@dataclass(frozen=True)
class GeneratorConfig:
    orders: int = 1_000
    seed: int = 0
    start_ms: int = 0  # 0 means DEFAULT_START
    span_ms: int = DAY_MS
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    duplicate_rate: float = DUPLICATE_RATE
    late_rate: float = LATE_RATE
    order_feed_lag_rate: float = ORDER_FEED_LAG_RATE
    bad_records: int | None = None  # None: BAD_PER_ORDER per order (>= MIN_BAD); 0: none
    # Raw garbage / wrong-magic-byte records only make sense on the Kafka wire; JSONL carries
    # them base64-encoded under "raw" when enabled.
    raw_garbage: bool = False

    @property
    def start(self) -> int:
        return self.start_ms or parse_time(DEFAULT_START)


def parse_time(text: str) -> int:
    """ISO-8601 (``2026-11-01T00:00:00Z``) or epoch millis -> epoch millis."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``6h``, ``1d``, ``2w``, ``1500ms`` (bare numbers are seconds) -> ms."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"bad duration {text!r}; use e.g. 90s, 30m, 6h, 1d, 2w")
    value, unit = match.groups()
    return int(float(value) * _UNIT_MS[unit or "s"])


def parse_mix(text: str | None) -> dict[str, float]:
    """``happy=0.55,split=0.1`` -> normalised weights of every story.

    Named stories get exactly their share; the remainder (if any) is spread over the unnamed
    stories in proportion to their defaults, so ``happy=1`` means only happy orders and
    ``orphan=0`` just switches orphans off.
    """
    if not text or not text.strip():
        return normalise(DEFAULT_MIX)
    given: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_MIX:
            known = ", ".join(DEFAULT_MIX)
            raise ValueError(f"bad mix entry {part!r}; use story=share with story in: {known}")
        share = float(value)
        if share < 0:
            raise ValueError(f"negative share for {name}")
        given[name] = share
    named_total = sum(given.values())
    rest = {k: v for k, v in DEFAULT_MIX.items() if k not in given}
    rest_total = sum(rest.values())
    weights = dict(given)
    if named_total < 1 and rest_total > 0:
        for name, share in rest.items():
            weights[name] = (1 - named_total) * share / rest_total
    return normalise(weights)


def normalise(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix has no positive share")
    return {k: v / total for k, v in weights.items() if v > 0}


def allocate(mix: dict[str, float], orders: int) -> dict[str, int]:
    """Exact story counts for ``orders`` (largest remainder), so small runs honour the mix."""
    raw = {k: v * orders for k, v in mix.items()}
    counts = {k: int(v) for k, v in raw.items()}
    short = orders - sum(counts.values())
    by_remainder = sorted(raw, key=lambda k: (-(raw[k] - counts[k]), k))
    for name in by_remainder[:short]:
        counts[name] += 1
    return counts
