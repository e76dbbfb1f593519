"""Money in integer minor units: exact allocation and basis-point arithmetic, never floats.

Amounts are ``int`` minor units of an ISO-4217 currency carried alongside (cents for USD,
yen for JPY, fils for KWD); nothing here needs to know the exponent, because every operation
stays in the minor units it was given.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BPS_DENOMINATOR", "allocate", "apply_bps", "prorate"]

BPS_DENOMINATOR = 10_000  # basis points per whole


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into shares proportional to ``weights`` that sum exactly to ``total``.

    Largest-remainder method: every share starts at the floor of its exact proportion and the
    leftover units go to the largest remainders, ties to the earlier weight, so the result is
    deterministic and each share is within 1 of ``total * w / sum(weights)``. A negative total
    is split like its magnitude and negated, so ``allocate(-t, w) == [-s for s in
    allocate(t, w)]`` (refunds split the way charges do).

    Weights must be >= 0. All-zero weights are only allowed for a zero total (nothing to split).
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0, got {list(weights)}")
    if total < 0:
        return [-share for share in allocate(-total, weights)]
    whole = sum(weights)
    if whole == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError(f"cannot allocate {total} over all-zero weights")
    shares: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        share, remainder = divmod(total * weight, whole)
        shares.append(share)
        remainders.append(remainder)
    leftover = total - sum(shares)  # < len(weights), since each floor loses less than 1
    if leftover:
        # Largest remainder first; the index breaks ties so equal inputs give equal outputs.
        order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for i in order[:leftover]:
            shares[i] += 1
    return shares


def prorate(total: int, part: int, whole: int) -> int:
    """The share of ``total`` that ``part`` of ``whole`` carries, consistent with ``allocate``.

    ``prorate(t, p, w) + prorate(t, w - p, w) == t`` always holds, so splitting an amount into
    a part and the rest never loses a unit.
    """
    if not 0 <= part <= whole:
        raise ValueError(f"need 0 <= part <= whole, got part={part} whole={whole}")
    if whole == 0:
        return 0
    return allocate(total, [part, whole - part])[0]


def apply_bps(amount: int, bps: int) -> int:
    """``amount * bps / 10000`` rounded half away from zero (how providers round a rate)."""
    product = abs(amount) * bps
    rounded = (product + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR
    return -rounded if amount < 0 else rounded
