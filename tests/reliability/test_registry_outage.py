"""The schema registry goes down mid-stream: the worker keeps processing records whose schema
ids it has cached, holds (does not dead-letter) records with an id it has never seen, a
producer that needs a new id fails with a clear error, and after the registry comes back on
the same topic and port everything converges to the pure oracle's verdicts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from streams.dlq import iter_dead_letters
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.emit import GeneratedEvent
from streams.producer import EventProducer
from streams.schema_source import RegistrySchemaSource, RegistryUnavailable
from streams.serde import WireEncoder
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from tables.schema_files import load_schema_text
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import wait_for_zero_lag
from tests.reliability.support import RegistryProcess, assert_live_equals_oracle, wait_for

pytestmark = pytest.mark.broker


@pytest.fixture
def registry(kafka_bootstrap: str, tmp_path: Path) -> Iterator[RegistryProcess]:
    process = RegistryProcess(kafka_bootstrap, tmp_path / "own-registry.log").start()
    try:
        yield process
    finally:
        process.stop()


def order_event_v2() -> str:
    """OrderEvent with one more optional field: a compatible new writer version."""
    schema = json.loads(load_schema_text("OrderEvent"))
    schema["fields"].append({"name": "gift_note", "type": ["null", "string"], "default": None})
    return json.dumps(schema)


def send(producer: EventProducer, names: TopicNames, events: Sequence[GeneratedEvent]) -> None:
    for ev in events:
        assert ev.value is not None
        key = None if ev.key is None else ev.key.encode()
        producer.send(getattr(names, ev.topic), ev.value, key=key)
    assert producer.flush() == 0 and not producer.errors


def test_registry_outage_mid_stream(app_settings: Settings, start: StartWorker,
                                    registry: RegistryProcess) -> None:
    """Cached ids keep flowing, unseen ids wait for the registry, nothing is dead-lettered."""
    settings = app_settings.model_copy(update={"registry_url": registry.url})
    names = TopicNames.with_prefix(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    events = generate(GeneratorConfig(orders=90, seed=31, bad_records=0)).events
    # c: the whole story of the last 10 orders (sent during the outage, orders in a new
    # schema version); a, b: the rest, a covering every input topic.
    keys = list(dict.fromkeys(ev.key for ev in events if ev.key is not None))
    late = set(keys[-10:])
    c = [ev for ev in events if ev.key in late]
    rest = [ev for ev in events if ev.key not in late]
    a, rest = rest[:len(rest) // 2], rest[len(rest) // 2:]
    for topic in ("orders", "shipments", "returns", "settlements"):
        if all(ev.topic != topic for ev in a):
            first = next(ev for ev in rest if ev.topic == topic)
            a, rest = [*a, first], [ev for ev in rest if ev is not first]
    b = rest
    ensure_topics(bootstrap, names, settings.partitions)
    source = RegistrySchemaSource(registry.url)
    producer = EventProducer(bootstrap, source, names=names, validate=False)
    send(producer, names, a)
    assert sorted(producer._encoders) == sorted(names.inputs), "every input id cached"
    # A new writer version, registered while the registry is up, not yet seen by the worker.
    v2 = WireEncoder(source, f"{names.orders}-value", order_event_v2())
    v2.resolve()

    worker = start(FSTREAMS_REGISTRY_URL=registry.url)
    wait_for_zero_lag(bootstrap, settings.app_id, names.inputs, workers=[worker])

    registry.stop()
    # Known ids: the worker processes them with the registry down.
    send(producer, names, b)
    wait_for_zero_lag(bootstrap, settings.app_id, names.inputs, workers=[worker])
    # A producer that needs an id from the registry is told so, naming the registry.
    fresh = EventProducer(bootstrap, RegistrySchemaSource(registry.url), names=names)
    first = next(ev for ev in c if ev.topic == "orders")
    with pytest.raises(RegistryUnavailable, match=rf"registry at {registry.url} unreachable"):
        fresh.send(names.orders, first.value or {})

    # Orders in the new version: the worker cannot read them yet and holds the partition.
    for ev in c:
        assert ev.value is not None
        key = None if ev.key is None else ev.key.encode()
        if ev.topic == "orders":
            producer.produce_raw(names.orders, key, v2.encode({**ev.value, "gift_note": "hi"}))
        else:
            producer.send(getattr(names, ev.topic), ev.value, key=key)
    assert producer.flush() == 0 and not producer.errors
    log_path = worker.log_path
    assert log_path is not None
    wait_for("the worker waiting for the registry",
             lambda: "schema registry unreachable" in log_path.read_text(errors="replace"),
             workers=[worker])

    registry.start()  # same topic, same port: same ids
    wait_for_zero_lag(bootstrap, settings.app_id, names.inputs, timeout=120, workers=[worker])
    assert not list(iter_dead_letters(bootstrap, names, RegistrySchemaSource(registry.url)))
    assert_live_equals_oracle(settings)
