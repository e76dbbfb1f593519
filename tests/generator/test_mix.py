"""The story mix: parsing, exact allocation, and that a run honours it."""

from __future__ import annotations

import pytest

from streams.generator import DEFAULT_MIX, Generated, GeneratorConfig, generate, parse_mix
from streams.generator.config import allocate, parse_duration, parse_time
from streams.generator.scenarios import SCENARIOS

from .conftest import ORDERS


def test_every_default_story_has_a_scenario() -> None:
    assert set(DEFAULT_MIX) == set(SCENARIOS)
    assert sum(DEFAULT_MIX.values()) == pytest.approx(1.0)


def test_named_shares_are_exact_and_the_rest_keeps_default_proportions() -> None:
    mix = parse_mix("happy=0.55,split=0.1")
    assert mix["happy"] == pytest.approx(0.55)
    assert mix["split"] == pytest.approx(0.1)
    assert sum(mix.values()) == pytest.approx(1.0)
    ratio = mix["cancel"] / mix["backorder"]
    assert ratio == pytest.approx(DEFAULT_MIX["cancel"] / DEFAULT_MIX["backorder"])


def test_only_named_stories_when_they_fill_the_mix() -> None:
    assert parse_mix("happy=1") == {"happy": 1.0}
    assert parse_mix("happy=3,split=1") == {"happy": 0.75, "split": 0.25}
    assert "orphan" not in parse_mix("orphan=0")


@pytest.mark.parametrize("bad", ["nonsense=0.1", "happy", "happy=-1"])
def test_bad_mix_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_mix(bad)


def test_allocation_is_exact() -> None:
    counts = allocate(parse_mix(None), 1_000)
    assert sum(counts.values()) == 1_000
    assert counts["happy"] == 495


def test_run_honours_the_mix(run: Generated) -> None:
    stories = run.truth.counts["stories"]
    assert sum(stories.values()) == ORDERS
    for name, share in DEFAULT_MIX.items():
        assert abs(stories.get(name, 0) - share * ORDERS) <= 1, name


def test_single_story_mix() -> None:
    g = generate(GeneratorConfig(orders=40, seed=1, mix=parse_mix("split=1")))
    assert {o["story"] for o in g.truth.orders.values()} == {"split"}
    assert all(o["split"] for o in g.truth.orders.values())


def test_time_and_duration_parsing() -> None:
    assert parse_time("2026-11-01T00:00:00Z") == 1_793_491_200_000
    assert parse_time("1793491200000") == 1_793_491_200_000
    assert parse_duration("1d") == 86_400_000
    assert parse_duration("30m") == 1_800_000
    assert parse_duration("90") == 90_000
    with pytest.raises(ValueError):
        parse_duration("soon")
