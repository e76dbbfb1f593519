"""Integer money: largest-remainder allocation, proration and basis points."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.money import allocate, apply_bps, prorate


def test_allocate_even_split_gives_remainder_to_earliest() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]


def test_allocate_follows_largest_remainder() -> None:
    # Exact: 3.3, 3.3, 3.4 -> floors 3, 3, 3 and the leftover unit to the largest remainder.
    assert allocate(10, [33, 33, 34]) == [3, 3, 4]


def test_allocate_tax_over_lines_sums_exactly() -> None:
    tax = 1_999
    line_values = [1_000, 2_000, 3_333, 17]
    shares = allocate(tax, line_values)
    assert sum(shares) == tax
    assert shares == [315, 630, 1_049, 5]


def test_allocate_negative_total_mirrors_positive() -> None:
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert sum(allocate(-7, [2, 3])) == -7


def test_allocate_zero_weights() -> None:
    assert allocate(0, [0, 0]) == [0, 0]
    assert allocate(5, [0, 3]) == [0, 5]
    with pytest.raises(ValueError):
        allocate(5, [0, 0])
    with pytest.raises(ValueError):
        allocate(5, [])
    with pytest.raises(ValueError):
        allocate(5, [1, -1])


def test_prorate_part_and_rest_add_up() -> None:
    assert prorate(1_000, 1, 3) + prorate(1_000, 2, 3) == 1_000
    assert prorate(1_000, 0, 0) == 0
    assert prorate(999, 3, 3) == 999
    with pytest.raises(ValueError):
        prorate(10, 4, 3)


def test_apply_bps_rounds_half_away_from_zero() -> None:
    assert apply_bps(10_000, 290) == 290
    assert apply_bps(150, 290) == 4  # 4.35
    assert apply_bps(50, 100) == 1  # 0.5 rounds up
    assert apply_bps(-50, 100) == -1


@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_allocate_properties(total: int, weights: list[int]) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    whole = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(total * weight, whole)
        assert abs(share - exact) < 1
        if weight == 0:
            assert share == 0
    assert allocate(-total, weights) == [-s for s in shares]
    assert allocate(total, weights) == shares  # deterministic
