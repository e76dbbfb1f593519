"""Accumulates the truth while the stream is generated: per story when it is told, per event
when it is emitted; ``finish`` applies the final stream time to the deadlines."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from streams.generator import emit, truth
from streams.generator.config import GeneratorConfig
from streams.generator.emit import GeneratedEvent
from streams.generator.story import OrderStory
from streams.generator.thresholds import ALLOWED_LATENESS_MS


class TruthBuilder:
    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.orders: dict[str, dict[str, Any]] = {}
        self.orphans: list[dict[str, Any]] = []
        self.mismatches: list[dict[str, Any]] = []
        self.breaches: list[dict[str, Any]] = []
        self.stories: Counter[str] = Counter()
        self.by_topic: Counter[str] = Counter()
        self.dead: list[dict[str, Any]] = []
        self.emitted = self.valid = self.duplicates = 0
        self.out_of_order = self.late = self.first_via_other = 0
        self.as_of: int | None = None
        self._key_max: dict[str | None, int] = {}

    def add_story(self, s: OrderStory) -> None:
        self.stories[s.story] += 1
        if s.order_known:
            order = truth.order_truth(s, len(s.events))
            self.orders[s.order_id] = order
            self.breaches += truth.order_breaches(s, order)
            self.mismatches += truth.mismatches_of(s, s.order_id)
            return
        keyed = {key for _, key, _ in s.events}
        key = s.order_id if s.order_id in keyed else None
        topics = sorted({topic for topic, _, _ in s.events})
        self.orphans.append({"order_id": key, "topics": topics, "event_count": len(s.events)})
        self.mismatches += truth.mismatches_of(s, key)
        if key is not None:
            first = min(v["event_time"] for _, _, v in s.events)
            self.breaches.append(truth.orphan_breach(s, first))

    def observe(self, ev: GeneratedEvent) -> None:
        """Count an emitted event and measure disorder (valid first deliveries only)."""
        self.emitted += 1
        if ev.is_bad:
            self.dead.append(emit.dead_letter(ev))
            return
        if ev.is_duplicate:
            self.duplicates += 1
            return
        assert ev.value is not None
        self.valid += 1
        self.by_topic[ev.topic] += 1
        t = ev.value["event_time"]
        seen = self._key_max.get(ev.key)
        if seen is None:
            # Stories are told before their events come out, so the order is known here.
            if ev.topic != "orders" and ev.key in self.orders:
                self.first_via_other += 1
        elif t < seen:
            self.out_of_order += 1
        self._key_max[ev.key] = t if seen is None else max(seen, t)
        if self.as_of is not None and t < self.as_of - ALLOWED_LATENESS_MS:
            self.late += 1
        self.as_of = t if self.as_of is None else max(self.as_of, t)

    def finish(self) -> truth.Truth:
        as_of = self.as_of if self.as_of is not None else self.config.start
        stream_time = as_of - ALLOWED_LATENESS_MS
        due_m = [m for m in self.mismatches if m["due_at"] <= stream_time]
        due_b = [b for b in self.breaches if b["deadline"] <= stream_time]
        not_yet = ([{"kind": "mismatch", **m} for m in self.mismatches
                    if m["due_at"] > stream_time]
                   + [{"kind": "sla_breach", **b} for b in self.breaches
                      if b["deadline"] > stream_time])
        counts = {
            "orders": len(self.orders),
            "orphan_keys": len(self.orphans),
            "stories": dict(sorted(self.stories.items())),
            "events_emitted": self.emitted,
            "valid_events": self.valid,
            "valid_by_topic": dict(sorted(self.by_topic.items())),
            "duplicates": self.duplicates,
            "bad": len(self.dead),
            "out_of_order": self.out_of_order,
            "late": self.late,
            "orders_first_seen_via_other_topic": self.first_via_other,
            "mismatches": dict(sorted(Counter(m["category"] for m in due_m).items())),
            "sla_breaches": dict(sorted(Counter(b["rule"] for b in due_b).items())),
        }
        dead = {
            "count": len(self.dead),
            "by_reason": dict(sorted(Counter(d["reason"] for d in self.dead).items())),
            "records": self.dead,
        }
        cfg = {**asdict(self.config), "start_ms": self.config.start}
        return truth.Truth(config=cfg, as_of=as_of, stream_time=stream_time,
                           orders=self.orders, orphans=self.orphans, mismatches=due_m,
                           sla_breaches=due_b, not_yet_due=not_yet, dead_letters=dead,
                           counts=counts)
