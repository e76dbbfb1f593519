"""Schema evolution through the real registry and broker: v2 adds an optional field."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from streams.schema_source import RegistryRejected, RegistrySchemaSource
from streams.serde import WireDecoder, WireEncoder
from tables.schema_files import load_schema_text

from .helpers import SAMPLES, order_v2_text, sample
from .kafka_helpers import consume, create_topics

pytestmark = pytest.mark.broker


def test_old_and_new_readers_read_both_versions(kafka_bootstrap: str, registry_url: str,
                                                unique_name: str) -> None:
    topic = f"{unique_name}-orders"
    create_topics(kafka_bootstrap, topic)
    source = RegistrySchemaSource(registry_url)
    v1 = WireEncoder.for_topic(source, topic, "OrderEvent")
    v2 = WireEncoder(source, f"{topic}-value", order_v2_text())
    assert v2.resolve() != v1.resolve()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, v1.encode(sample("OrderEvent")))
    producer.produce(topic, v2.encode({**sample("OrderEvent"), "gift_note": "happy birthday"}))
    assert producer.flush(15) == 0
    old_data, new_data = (m.value() for m in consume(kafka_bootstrap, topic, 2))

    old_reader = WireDecoder(source, load_schema_text("OrderEvent"))
    new_reader = WireDecoder(source, order_v2_text())
    assert old_reader.decode(old_data) == SAMPLES["OrderEvent"]
    assert old_reader.decode(new_data) == SAMPLES["OrderEvent"]  # new field ignored
    assert new_reader.decode(old_data) == {**SAMPLES["OrderEvent"], "gift_note": None}
    assert new_reader.decode(new_data)["gift_note"] == "happy birthday"


def test_registry_refuses_an_incompatible_v2(registry_url: str, unique_name: str) -> None:
    source = RegistrySchemaSource(registry_url)
    subject = f"{unique_name}-orders-value"
    source.register(subject, load_schema_text("OrderEvent"))
    incompatible = WireEncoder(source, subject, order_v2_text(compatible=False))
    with pytest.raises(RegistryRejected) as err:
        incompatible.resolve()
    assert err.value.status == 409
    assert incompatible.schema_id is None
