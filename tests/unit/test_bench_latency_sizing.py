"""The latency bench generates events enough for every phase it was asked to run: the default
3,000 orders once covered only 26 s of a 30 s steady phase at 1,400 events/s, and no profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import latency_bench  # the bench dir is not a package

from streams.generator import GeneratorConfig, generate


def args(**given: float) -> argparse.Namespace:
    defaults = {"rate": 0.0, "backlog": 10_000, "seconds": 30.0, "profile": 10.0, "load": 0.5}
    return argparse.Namespace(**{**defaults, **given})


def test_a_given_rate_gets_events_for_the_steady_phase_and_the_profile() -> None:
    a = args(rate=1_400, seconds=5, profile=2)
    events = generate(GeneratorConfig(orders=latency_bench.orders_needed(a), seed=11)).events
    assert len(events) - latency_bench.WARM_UP_EVENTS >= 1_400 * (5 + 2)


def test_a_measured_rate_gets_events_for_half_of_the_assumed_capacity() -> None:
    a = args(backlog=2_000, seconds=4, profile=1)
    events = generate(GeneratorConfig(orders=latency_bench.orders_needed(a), seed=11)).events
    assert len(events) - 2_000 >= latency_bench.ASSUMED_CAPACITY * 0.5 * (4 + 1)
