"""Pacing for --rate and the Kafka path, with a fake producer (no broker needed)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.generator import GeneratorConfig, generate
from streams.generator.output import Pacer, produce_to_kafka


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_pacer_holds_the_rate_and_reports() -> None:
    clock = FakeClock()
    lines: list[str] = []
    pacer = Pacer(1_000, 200.0, lines.append, every_s=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(1_000):
        pacer.tick()
    assert clock.slept == pytest.approx(5.0)
    assert len(lines) == 5
    assert lines[-1].startswith("sent 1000/1000 (100%) events, 200 ev/s")


def test_pacer_flat_out_never_sleeps() -> None:
    clock = FakeClock()
    pacer = Pacer(10, None, None, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        pacer.tick()
    assert clock.slept == 0


class FakeProducer:
    sent: list[tuple[str, str, Any]] = []

    def __init__(self, bootstrap: str, source: Any, *, names: Any, validate: bool) -> None:
        self.delivered = 0
        self.errors: list[Exception] = []

    def __enter__(self) -> FakeProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, topic: str, record: dict[str, Any], *, key: bytes | None) -> None:
        self.sent.append(("send", topic, key))
        self.delivered += 1

    def produce_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.sent.append(("raw", topic, value))
        self.delivered += 1

    def record_name(self, topic: str, record_name: str | None) -> str:
        return "X"

    def encoder(self, topic: str, record_name: str) -> Any:
        class Enc:
            def encode(self, record: dict[str, Any]) -> bytes:
                return b"\x00\x00\x00\x00\x01avro"

        return Enc()

    def flush(self) -> int:
        return 0


def test_kafka_path_routes_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.producer
    import streams.schema_source

    monkeypatch.setattr(streams.producer, "EventProducer", FakeProducer)
    monkeypatch.setattr(streams.schema_source, "RegistrySchemaSource", lambda url: None)
    FakeProducer.sent = []
    g = generate(GeneratorConfig(orders=40, seed=2, raw_garbage=True))
    delivered = produce_to_kafka(g.events, bootstrap="x:9092", registry_url="http://r",
                                 topic_prefix="t1-")
    assert delivered == len(g.events)
    assert {topic for _, topic, _ in FakeProducer.sent} <= {
        "t1-orders", "t1-shipments", "t1-returns", "t1-settlements"}
    raw = sum(1 for ev in g.events if ev.is_bad)
    assert sum(1 for kind, _, _ in FakeProducer.sent if kind == "raw") == raw
