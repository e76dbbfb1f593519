"""``generate(config)``: tell every story, let the stream arrive, write down the truth."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from streams.generator import emit, truth
from streams.generator.config import BAD_RATE, MIN_BAD, GeneratorConfig, allocate, normalise
from streams.generator.emit import GeneratedEvent
from streams.generator.scenarios import SCENARIOS
from streams.generator.story import OrderStory
from streams.generator.thresholds import ALLOWED_LATENESS_MS


@dataclass
class Generated:
    events: list[GeneratedEvent]  # in emission (simulated arrival) order
    truth: truth.Truth


def tell_stories(config: GeneratorConfig, rng: random.Random) -> list[OrderStory]:
    mix = normalise(config.mix)
    unknown = set(mix) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown stories in mix: {sorted(unknown)}")
    names = [name for name, n in allocate(mix, config.orders).items() for _ in range(n)]
    rng.shuffle(names)
    stories = []
    for seq, name in enumerate(names):
        scenario = SCENARIOS[name]
        placed_at = config.start + rng.randrange(max(1, config.span_ms))
        # Each story draws from its own stream, so one story's length cannot shift the next.
        story_rng = random.Random(rng.getrandbits(64))
        s = OrderStory(story=name, seq=seq, seed=config.seed, rng=story_rng,
                       placed_at=placed_at, min_units=scenario.min_units)
        scenario.tell(s)
        stories.append(s)
    return stories


def generate(config: GeneratorConfig) -> Generated:
    rng = random.Random(config.seed)
    stories = tell_stories(config, rng)
    valid = emit.arrivals(stories, rng, config.late_rate, config.order_feed_lag_rate)
    dups = emit.duplicates(valid, rng, config.duplicate_rate)
    n_bad = (max(MIN_BAD, round(BAD_RATE * len(valid))) if config.bad_records is None
             else config.bad_records)
    bad = emit.bad_records(stories, valid, rng, n_bad, config.raw_garbage)
    ordered = sorted(enumerate([*valid, *dups, *bad]), key=lambda p: (p[1].arrival, p[0]))
    events = [ev for _, ev in ordered]
    return Generated(events, build_truth(config, stories, events))


def _disorder(events: list[GeneratedEvent]) -> tuple[int, int, int]:
    """(out-of-order within their key, late against stream time, orders whose first arriving
    event is not the order itself)."""
    key_max: dict[str | None, int] = {}
    out_of_order = late = 0
    stream_max = 0
    for ev in events:
        if ev.is_duplicate or ev.is_bad or ev.event_time is None:
            continue
        t = ev.event_time
        if t < key_max.get(ev.key, t):
            out_of_order += 1
        key_max[ev.key] = max(key_max.get(ev.key, t), t)
        if t < stream_max - ALLOWED_LATENESS_MS:
            late += 1
        stream_max = max(stream_max, t)
    first: dict[str | None, str] = {}
    for ev in events:
        if not (ev.is_duplicate or ev.is_bad):
            first.setdefault(ev.key, ev.topic)
    return out_of_order, late, sum(1 for topic in first.values() if topic != "orders")


def build_truth(config: GeneratorConfig, stories: list[OrderStory],
                events: list[GeneratedEvent]) -> truth.Truth:
    valid = [ev for ev in events if not ev.is_duplicate and not ev.is_bad]
    per_key = Counter(ev.key for ev in valid)
    as_of = max((ev.value["event_time"] for ev in valid if ev.value), default=config.start)
    stream_time = as_of - ALLOWED_LATENESS_MS
    orders: dict[str, dict[str, Any]] = {}
    orphans: list[dict[str, Any]] = []
    mismatches: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    for s in stories:
        if s.order_known:
            orders[s.order_id] = truth.order_truth(s, per_key[s.order_id])
            breaches += truth.order_breaches(s, orders[s.order_id])
            mismatches += truth.mismatches_of(s, s.order_id)
            continue
        keyed = {key for _, key, _ in s.events}
        key = s.order_id if s.order_id in keyed else None
        topics = sorted({topic for topic, _, _ in s.events})
        orphans.append({"order_id": key, "topics": topics, "event_count": len(s.events)})
        mismatches += truth.mismatches_of(s, key)
        if key is not None:
            breaches.append(truth.orphan_breach(s, min(v["event_time"] for _, _, v in s.events)))
    due_m = [m for m in mismatches if m["due_at"] <= stream_time]
    due_b = [b for b in breaches if b["deadline"] <= stream_time]
    not_yet = ([{"kind": "mismatch", **m} for m in mismatches if m["due_at"] > stream_time]
               + [{"kind": "sla_breach", **b} for b in breaches if b["deadline"] > stream_time])
    bad = [ev for ev in events if ev.is_bad]
    out_of_order, late, order_after_others = _disorder(events)
    counts = {
        "orders": len(orders),
        "orphan_keys": len(orphans),
        "stories": dict(sorted(Counter(s.story for s in stories).items())),
        "events_emitted": len(events),
        "valid_events": len({ev.event_id for ev in valid}),
        "valid_by_topic": dict(sorted(Counter(ev.topic for ev in valid).items())),
        "duplicates": sum(1 for ev in events if ev.is_duplicate),
        "bad": len(bad),
        "out_of_order": out_of_order,
        "late": late,
        "orders_first_seen_via_other_topic": order_after_others,
        "mismatches": dict(sorted(Counter(m["category"] for m in due_m).items())),
        "sla_breaches": dict(sorted(Counter(b["rule"] for b in due_b).items())),
    }
    dead = {
        "count": len(bad),
        "by_reason": dict(sorted(Counter(ev.bad_reason for ev in bad).items())),
        "records": [emit.dead_letter(ev) for ev in bad],
    }
    cfg = {**asdict(config), "start_ms": config.start}
    return truth.Truth(config=cfg, as_of=as_of, stream_time=stream_time, orders=orders,
                       orphans=orphans, mismatches=due_m, sla_breaches=due_b,
                       not_yet_due=not_yet, dead_letters=dead, counts=counts)
