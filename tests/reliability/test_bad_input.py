"""Thousands of bad records interleaved with good traffic, keyed by real order ids: every bad
record lands in `dead-letters` with its reason and original bytes, every good record is
processed (the pure oracle skips exactly what the agent dead-letters), the worker never dies.

An input partition whose last record is dead-lettered is its own (failing) test below."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.dlq import iter_dead_letters
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.emit import GeneratedEvent
from streams.ingest import STAGE_DECODE, STAGE_VALIDATE
from streams.producer import EventProducer
from streams.schema_source import RegistrySchemaSource
from streams.serde import DecodeError, WireDecoder
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from tables.fulfillment import validate
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import read_topic, wait_for_zero_lag
from tests.reliability.support import assert_live_equals_oracle, names_of, produce

pytestmark = pytest.mark.broker

BAD_PER_KIND = 300
UNKNOWN_IDS = tuple(range(9_000_001, 9_000_006))  # never handed out by the registry


@dataclass(frozen=True)
class Bad:
    kind: str
    topic: str
    key: bytes
    value: bytes
    stage: str


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class BadRecords:
    """Bad records of every kind, built from real events of the generated traffic."""

    def __init__(self, producer: EventProducer, names: TopicNames,
                 good: list[GeneratedEvent], rng: random.Random) -> None:
        self.producer, self.names, self.rng = producer, names, rng
        self.good = [ev for ev in good if ev.key is not None and ev.value is not None]

    def encode(self, topic: str, value: dict[str, Any]) -> bytes:
        full = getattr(self.names, topic)
        return self.producer.encoder(full, self.producer.record_name(full, None)).encode(value)

    def pick(self, *topics: str, where: Any = None) -> GeneratedEvent:
        pool = [ev for ev in self.good if ev.topic in topics and (where is None or where(ev))]
        return self.rng.choice(pool)

    def bad(self, kind: str, base: GeneratedEvent, value: bytes, stage: str) -> Bad:
        assert base.key is not None
        return Bad(kind, getattr(self.names, base.topic), base.key.encode(), value, stage)

    def semantic(self, kind: str) -> Bad:
        rng = self.rng
        if kind == "negative_quantity":
            base = self.pick("orders", "shipments", "returns",
                             where=lambda ev: bool(ev.value["lines"]))
        elif kind == "unknown_currency":
            base = self.pick("orders", "settlements")
        else:  # placed order without lines
            base = self.pick("orders", where=lambda ev: ev.value["type"] == "placed")
        assert base.value is not None
        value = {**base.value, "event_id": f"bad-{rng.getrandbits(64):016x}"}
        if kind == "negative_quantity":
            value["lines"] = [{**value["lines"][0], "quantity": -rng.randint(1, 9)}]
        elif kind == "unknown_currency":
            value["currency"] = rng.choice(["ZZZ", "usd", "", "EURO"])
        elif kind == "empty_lines":
            value["lines"] = []
        elif kind == "huge_string":  # a 200 KB currency: schema-valid, semantically not
            value["currency"] = "X" * 200_000
        return self.bad(kind, base, self.encode(base.topic, value), STAGE_VALIDATE)

    def raw(self, kind: str) -> Bad:
        rng = self.rng
        base = self.pick("orders", "shipments", "returns", "settlements")
        assert base.value is not None
        valid = self.encode(base.topic, base.value)
        if kind == "random_bytes":
            value = rng.randbytes(rng.randint(1, 300))
        elif kind == "wrong_magic":
            value = bytes([rng.randint(1, 255)]) + valid[1:]
        elif kind == "unknown_schema_id":
            value = b"\x00" + rng.choice(UNKNOWN_IDS).to_bytes(4, "big") + valid[5:]
        elif kind == "truncated":
            value = valid[:rng.randint(5, len(valid) - 1)]
        else:  # huge_length: a string that claims a terabyte
            value = valid[:5] + _zigzag(1 << 40) + b"order"
        return self.bad(kind, base, value, STAGE_DECODE)

    def all(self) -> list[Bad]:
        out = []
        for kind in ("random_bytes", "wrong_magic", "unknown_schema_id", "truncated"):
            out += [self.raw(kind) for _ in range(BAD_PER_KIND)]
        for kind in ("negative_quantity", "unknown_currency", "empty_lines"):
            out += [self.semantic(kind) for _ in range(BAD_PER_KIND)]
        out += [self.raw("huge_length") for _ in range(BAD_PER_KIND // 10)]
        out += [self.semantic("huge_string") for _ in range(BAD_PER_KIND // 10)]
        self.rng.shuffle(out)
        return out


def last_good_records(settings: Settings) -> dict[tuple[str, int], tuple[bytes, bytes]]:
    """(topic, partition) -> (key, value) of the last record the agent would process, for
    every input partition."""
    names = names_of(settings)
    source = RegistrySchemaSource(settings.registry_url)
    out: dict[tuple[str, int], tuple[bytes, bytes]] = {}
    for topic in names.inputs:
        decoder = WireDecoder.for_record(source, names.record_of(topic))
        for partition, _, key, value in read_topic(settings.bootstrap_servers, topic):
            assert key is not None and value is not None
            with contextlib.suppress(DecodeError):
                if validate(names.kind_of(topic), decoder.decode(value)) is None:
                    out[(topic, partition)] = (key, value)
    return out


def produce_to_partitions(settings: Settings,
                          records: dict[tuple[str, int], tuple[bytes, bytes]]) -> None:
    raw = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for (topic, partition), (key, value) in records.items():
        raw.produce(topic, value, key, partition=partition)
    assert raw.flush(30) == 0


def resend_last_good_records(settings: Settings) -> None:
    produce_to_partitions(settings, last_good_records(settings))


def test_bad_records_are_dead_lettered_and_good_ones_processed(
    app_settings: Settings, start: StartWorker
) -> None:
    """Fuzzed input: DLQ count == bad sent, bytes preserved, oracle verdicts, worker alive."""
    settings = app_settings
    names = names_of(settings)
    rng = random.Random(20261123)
    good = generate(GeneratorConfig(orders=80, seed=99, bad_records=0)).events
    ensure_topics(settings.bootstrap_servers, names, settings.partitions)
    source = RegistrySchemaSource(settings.registry_url)
    worker = start()

    raw = Producer({"bootstrap.servers": settings.bootstrap_servers,
                    "partitioner": "murmur2_random", "linger.ms": 5})
    with EventProducer(settings.bootstrap_servers, source, names=names,
                       validate=False) as producer:
        bad = BadRecords(producer, names, good, rng).all()
        # Interleaved in arrival order: a few bad records after each good one.
        queue = list(bad)
        for ev in good:
            assert ev.value is not None and ev.key is not None
            producer.send(getattr(names, ev.topic), ev.value, key=ev.key.encode())
            for _ in range(rng.randint(0, 2 * len(bad) // len(good) + 1)):
                if queue:
                    record = queue.pop()
                    raw.produce(record.topic, record.value, record.key)
                    raw.poll(0)
        for record in queue:
            raw.produce(record.topic, record.value, record.key)
        assert raw.flush(30) == 0
    assert len(bad) > 2000
    # Every input partition ends with a good record (a re-sent one: deduplicated, no effect),
    # so this test is about the bad records themselves; the trailing bad record is below.
    resend_last_good_records(settings)

    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      timeout=180, workers=[worker])
    assert worker.running

    letters = list(iter_dead_letters(settings.bootstrap_servers, names, source))
    assert len(letters) == len(bad)
    records = [entry.record for entry in letters]
    assert all(r is not None for r in records), [e.error for e in letters if e.record is None]
    assert all(r["error_class"] and r["error_message"] for r in records)  # type: ignore[index]
    got = Counter((r["original_topic"], r["key"], r["value"], r["stage"])  # type: ignore[index]
                  for r in records)
    assert got == Counter((b.topic, b.key, b.value, b.stage) for b in bad)

    assert_live_equals_oracle(settings)


def test_partition_ending_with_a_bad_record(app_settings: Settings, start: StartWorker) -> None:
    """Good traffic, then one undecodable record at the end of every input partition: the
    live verdicts still equal the oracle's (the bad record is skipped, time moves on)."""
    settings = app_settings
    produce(settings, generate(GeneratorConfig(orders=60, seed=5, bad_records=0)).events)
    trailing = {tp: (key, b"\x01not avro") for tp, (key, _) in
                last_good_records(settings).items()}
    produce_to_partitions(settings, trailing)
    worker = start()
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id,
                      names_of(settings).inputs, workers=[worker])
    assert worker.running
    dead = list(iter_dead_letters(settings.bootstrap_servers, names_of(settings)))
    assert len(dead) == len(trailing)
    assert_live_equals_oracle(settings)


def test_record_near_the_size_limit_is_dead_lettered(app_settings: Settings,
                                                     start: StartWorker) -> None:
    """A 600 KB invalid record (well under the 1 MB producer default) between good traffic is
    dead-lettered with its bytes, and the good records around it are processed."""
    settings = app_settings
    names = names_of(settings)
    events = generate(GeneratorConfig(orders=20, seed=6, bad_records=0)).events
    half = len(events) // 2
    produce(settings, events[:half])
    placed = next(ev for ev in events if ev.topic == "orders" and ev.value is not None)
    assert placed.value is not None and placed.key is not None
    source = RegistrySchemaSource(settings.registry_url)
    with EventProducer(settings.bootstrap_servers, source, names=names,
                       validate=False) as producer:
        huge = BadRecords(producer, names, events, random.Random(1)).encode(
            "orders", {**placed.value, "event_id": "huge", "currency": "X" * 600_000})
        producer.produce_raw(names.orders, placed.key.encode(), huge)
    produce(settings, events[half:])
    resend_last_good_records(settings)
    worker = start()
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[worker])
    assert worker.running
    assert_live_equals_oracle(settings)
    letters = list(iter_dead_letters(settings.bootstrap_servers, names, source))
    assert [entry.record["value"] for entry in letters if entry.record] == [huge]
