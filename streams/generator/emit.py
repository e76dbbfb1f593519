"""From story events to the stream as it arrives: ingest delays per source, late feeds,
orders that arrive after their warehouse events, at-least-once duplicates and bad records.

The emission order is the simulated arrival order, which differs from event_time order.
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema, schemaless_writer

from streams.generator.catalog import new_uuid
from streams.generator.story import OrderStory
from streams.generator.thresholds import HOUR_MS, MINUTE_MS, ORPHAN_GRACE_MS, SECOND_MS
from tables import schema_files

UNKNOWN_CURRENCY = "ZZZ"  # well-formed, but no ISO-4217 code


@dataclass(frozen=True)
class GeneratedEvent:
    topic: str  # base input topic name: orders, shipments, returns, settlements
    key: str | None  # order_id (None only for settlement lines with no order)
    value: dict[str, Any] | None  # the Avro record dict; None for raw garbage
    raw: bytes | None = None  # value bytes exactly as to be produced (bad records only)
    is_duplicate: bool = False
    is_bad: bool = False
    bad_reason: str | None = None
    arrival: int = 0  # simulated arrival time, epoch millis (defines the emission order)

    @property
    def event_id(self) -> str | None:
        return None if self.value is None else self.value["event_id"]

    @property
    def event_time(self) -> int | None:
        return None if self.value is None else self.value["event_time"]


def ingest_delay(rng: random.Random, topic: str, value: dict[str, Any]) -> int:
    """How long after event_time a feed typically delivers the event."""
    source = value["source_system"]
    if topic == "settlements":  # settlement reports are downloaded in batches
        return rng.randint(HOUR_MS, 6 * HOUR_MS)
    if source.startswith("3pl-"):  # 3PL feeds upload every 15 minutes
        t = value["event_time"]
        return (15 * MINUTE_MS - t % (15 * MINUTE_MS)) + rng.randint(0, 60 * SECOND_MS)
    if source.startswith("carrier-"):  # tracking aggregators poll the carriers
        return rng.randint(30 * SECOND_MS, 10 * MINUTE_MS)
    if topic == "orders":  # webhooks
        return rng.randint(200, 3 * SECOND_MS)
    return rng.randint(SECOND_MS, 30 * SECOND_MS)


def arrivals(s: OrderStory, rng: random.Random, late_rate: float,
             lagged: bool) -> list[GeneratedEvent]:
    """When each of the story's events reaches Kafka. ``lagged``: the marketplace order import
    runs behind the WMS, so the order lands after its first shipment event (yet inside
    ORPHAN_GRACE_MS, so it is no orphan)."""
    out: list[GeneratedEvent] = []
    first_other = min((v["event_time"] for topic, _, v in s.events if topic != "orders"),
                      default=None)
    for topic, key, value in s.events:
        arrival = value["event_time"] + ingest_delay(rng, topic, value)
        if rng.random() < late_rate:  # feed outage, retries, a paused connector
            arrival += rng.randint(10 * MINUTE_MS, 6 * HOUR_MS)
        if lagged and topic == "orders" and value["type"] == "placed":
            lag = rng.randint(10 * MINUTE_MS, 50 * MINUTE_MS)
            if first_other is not None:
                lag = max(lag, first_other - value["event_time"] + rng.randint(
                    5 * SECOND_MS, 5 * MINUTE_MS))
            arrival = value["event_time"] + min(lag, ORPHAN_GRACE_MS - 5 * MINUTE_MS)
        out.append(GeneratedEvent(topic, key, value, arrival=arrival))
    return out


def duplicates(events: list[GeneratedEvent], rng: random.Random,
               rate: float) -> list[GeneratedEvent]:
    """Redeliveries of the same event (producer retry soon after, or a replay hours later)."""
    dups = []
    for ev in events:
        if rng.random() < rate:
            later = (rng.randint(50, 5 * SECOND_MS) if rng.random() < 0.7
                     else rng.randint(HOUR_MS, 24 * HOUR_MS))
            dups.append(GeneratedEvent(ev.topic, ev.key, copy.deepcopy(ev.value),
                                       is_duplicate=True, arrival=ev.arrival + later))
    return dups


# --- bad records ---

SEMANTIC_BAD: tuple[str, ...] = ("negative_quantity", "unknown_currency")
RAW_BAD: tuple[str, ...] = ("not_avro", "bad_magic_byte")
DEAD_LETTER_STAGE = {"negative_quantity": "validate", "unknown_currency": "validate",
                     "not_avro": "deserialize", "bad_magic_byte": "deserialize"}


def _fits(kind: str, ev: GeneratedEvent) -> bool:
    assert ev.value is not None
    if kind == "negative_quantity":
        return ev.topic != "settlements" and bool(ev.value["lines"])
    if kind == "unknown_currency":
        return ev.topic in ("orders", "settlements")
    return True


def bad_records(kinds: list[str], valid: list[GeneratedEvent],
                rng: random.Random) -> list[GeneratedEvent]:
    """Invalid records riding on one real order, one per kind (skipped when the order has no
    event the kind can corrupt)."""
    out = []
    for kind in kinds:
        pool = [ev for ev in valid if _fits(kind, ev)]
        if pool:
            out.append(_corrupt(kind, rng.choice(pool), rng))
    return out


def _corrupt(kind: str, base: GeneratedEvent, rng: random.Random) -> GeneratedEvent:
    assert base.value is not None
    value = copy.deepcopy(base.value)
    value["event_id"] = new_uuid(rng)
    arrival = base.arrival + rng.randint(SECOND_MS, 10 * MINUTE_MS)
    topic = base.topic
    if kind == "negative_quantity":
        value["lines"][0]["quantity"] = -rng.randint(1, 3)
        if topic == "orders":
            value["type"] = "updated"  # a snapshot update from a broken integration
    elif kind == "unknown_currency":
        value["currency"] = UNKNOWN_CURRENCY
        if topic == "settlements":
            value["settlement_line_id"] = f"{value['settlement_line_id']}-X"
    if kind in SEMANTIC_BAD:
        return GeneratedEvent(topic, base.key, value, is_bad=True, bad_reason=kind,
                              arrival=arrival)
    if kind == "not_avro":  # a producer misconfigured with a JSON serializer
        raw = json.dumps(value, separators=(",", ":")).encode()
    else:  # an Avro body behind a frame whose magic byte is not 0
        raw = b"\x01" + struct.pack(">I", rng.randint(1, 50)) + _avro_body(topic, value)
    return GeneratedEvent(topic, base.key, None, raw=raw, is_bad=True, bad_reason=kind,
                          arrival=arrival)


_PARSED: dict[str, Any] = {}


def _avro_body(topic: str, value: dict[str, Any]) -> bytes:
    if topic not in _PARSED:
        _PARSED[topic] = parse_schema(
            schema_files.strip_logical_types(schema_files.load_topic_schema(topic)))
    buf = io.BytesIO()
    schemaless_writer(buf, _PARSED[topic], value)
    return buf.getvalue()


def dead_letter(ev: GeneratedEvent) -> dict[str, Any]:
    assert ev.bad_reason is not None
    return {"topic": ev.topic, "key": ev.key, "event_id": ev.event_id, "reason": ev.bad_reason,
            "stage": DEAD_LETTER_STAGE[ev.bad_reason]}
