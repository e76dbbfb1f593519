"""``generate(config)``: plan the stories, tell them in order of placement and merge their
events into one stream in arrival order, writing down the truth on the way.

``Generation`` streams: it tells a story only when the stream reaches the story's placement
time, so the first event goes out at once and `--rate` runs do not wait for the whole plan.
Both paths yield the same events in the same order for a seed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass

from streams.generator import emit, truth
from streams.generator.config import (
    BAD_PER_ORDER,
    MIN_BAD,
    GeneratorConfig,
    allocate,
    normalise,
)
from streams.generator.emit import GeneratedEvent
from streams.generator.scenarios import SCENARIOS
from streams.generator.story import OrderStory
from streams.generator.thresholds import MINUTE_MS
from streams.generator.truth_builder import TruthBuilder

# No story has an event earlier than this before its placement time (an orphan 3PL feed
# creates its shipment a few minutes before), so the stream up to (next placement - this) is
# final once the stories placed before are told.
EARLIEST_EVENT_BEFORE_PLACEMENT_MS = 5 * MINUTE_MS


@dataclass(frozen=True)
class Generated:
    events: list[GeneratedEvent]  # in emission (simulated arrival) order
    truth: truth.Truth


@dataclass(frozen=True)
class StoryPlan:
    name: str
    placed_at: int
    seed: int
    bad: tuple[str, ...]  # bad-record kinds riding on this story


def plan(config: GeneratorConfig) -> list[StoryPlan]:
    """Every story with its placement time, own seed and bad records, by placement time."""
    mix = normalise(config.mix)
    unknown = set(mix) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown stories in mix: {sorted(unknown)}")
    rng = random.Random(config.seed)
    names = [name for name, n in allocate(mix, config.orders).items() for _ in range(n)]
    rng.shuffle(names)
    span = max(1, config.span_ms)
    drafts = [(config.start + rng.randrange(span), rng.getrandbits(64), name) for name in names]
    n_bad = (max(MIN_BAD, round(BAD_PER_ORDER * config.orders))
             if config.bad_records is None else config.bad_records)
    kinds = emit.SEMANTIC_BAD + (emit.RAW_BAD if config.raw_garbage else ())
    carriers = [i for i, (_, _, name) in enumerate(drafts) if name != "orphan"]
    bad: dict[int, list[str]] = {}
    for i in range(n_bad if carriers else 0):
        bad.setdefault(rng.choice(carriers), []).append(kinds[i % len(kinds)])
    plans = [StoryPlan(name, placed, seed, tuple(bad.get(i, ())))
             for i, (placed, seed, name) in enumerate(drafts)]
    plans.sort(key=lambda p: p.placed_at)
    return plans


def tell(config: GeneratorConfig, p: StoryPlan, seq: int) -> tuple[OrderStory,
                                                                   list[GeneratedEvent]]:
    """One story and everything it puts on the wire (valid, duplicates, bad)."""
    scenario = SCENARIOS[p.name]
    rng = random.Random(p.seed)  # each story its own stream: one story cannot shift another
    s = OrderStory(story=p.name, seq=seq, seed=config.seed, rng=rng, placed_at=p.placed_at,
                   min_units=scenario.min_units)
    scenario.tell(s)
    lagged = s.order_known and rng.random() < config.order_feed_lag_rate
    valid = emit.arrivals(s, rng, config.late_rate, lagged)
    dups = emit.duplicates(valid, rng, config.duplicate_rate)
    bad = emit.bad_records(list(p.bad), valid, rng) if p.bad else []
    return s, [*valid, *dups, *bad]


class Generation:
    """Iterate to get the events in arrival order; ``truth`` is complete after the last."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.plans = plan(config)
        self._builder = TruthBuilder(config)
        self._truth: truth.Truth | None = None

    def __len__(self) -> int:
        return len(self.plans)

    def __iter__(self) -> Iterator[GeneratedEvent]:
        heap: list[tuple[int, int, int, GeneratedEvent]] = []
        for seq, p in enumerate(self.plans):
            final_before = p.placed_at - EARLIEST_EVENT_BEFORE_PLACEMENT_MS
            while heap and heap[0][0] <= final_before:
                yield self._out(heapq.heappop(heap)[3])
            story, events = tell(self.config, p, seq)
            self._builder.add_story(story)
            for j, ev in enumerate(events):
                heapq.heappush(heap, (ev.arrival, seq, j, ev))
        while heap:
            yield self._out(heapq.heappop(heap)[3])
        self._truth = self._builder.finish()

    def _out(self, ev: GeneratedEvent) -> GeneratedEvent:
        self._builder.observe(ev)
        return ev

    @property
    def truth(self) -> truth.Truth:
        if self._truth is None:
            raise RuntimeError("the truth is known once every event has been generated")
        return self._truth


def generate(config: GeneratorConfig) -> Generated:
    gen = Generation(config)
    events = list(gen)
    return Generated(events, gen.truth)
