"""Same seed, same stream and truth; another seed, another stream."""

from __future__ import annotations

import json

import pytest

from streams.generator import Generated, Generation, GeneratorConfig, generate
from streams.generator.output import event_line

from .conftest import SEED


def _fingerprint(g: Generated) -> str:
    return json.dumps([event_line(ev) for ev in g.events], sort_keys=True)


def test_same_seed_same_bytes() -> None:
    config = GeneratorConfig(orders=300, seed=SEED, raw_garbage=True)
    first, again = generate(config), generate(config)
    assert _fingerprint(again) == _fingerprint(first)
    assert [ev.is_duplicate for ev in again.events] == [ev.is_duplicate for ev in first.events]
    assert again.truth.to_json() == first.truth.to_json()


def test_other_seed_other_stream() -> None:
    a = generate(GeneratorConfig(orders=50, seed=1))
    b = generate(GeneratorConfig(orders=50, seed=2))
    assert _fingerprint(a) != _fingerprint(b)
    assert set(a.truth.orders).isdisjoint(b.truth.orders)


def test_event_times_follow_start_and_span() -> None:
    start = 1_800_000_000_000
    g = generate(GeneratorConfig(orders=100, seed=3, start_ms=start, span_ms=3_600_000))
    placed = [o["accepted_at"] for o in g.truth.orders.values()]
    assert min(placed) >= start
    assert max(placed) < start + 3_600_000
    assert all(ev.value["event_time"] >= start - 5 * 60_000 for ev in g.events if ev.value)


def test_streaming_knows_the_truth_only_at_the_end() -> None:
    gen = Generation(GeneratorConfig(orders=20, seed=1))
    it = iter(gen)
    next(it)
    with pytest.raises(RuntimeError):
        _ = gen.truth
    rest = list(it)
    assert gen.truth.counts["events_emitted"] == len(rest) + 1
