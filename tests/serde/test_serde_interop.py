"""On the real broker and registry: confluent-kafka's Avro serde and ours read each other."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.producer import AsyncEventProducer, EventProducer
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireDecoder
from tables.schema_files import load_schema_text

from .helpers import SAMPLES, sample
from .kafka_helpers import consume, create_topics

pytestmark = pytest.mark.broker

_TIMESTAMPS = {"event_time", "posted_time", "promised_ship_by", "promised_deliver_by",
               "estimated_delivery_at", "settlement_period_start", "settlement_period_end"}


def _as_datetimes(record: dict[str, Any]) -> dict[str, Any]:
    """What AvroDeserializer returns: timestamp-millis as aware datetimes."""
    return {k: datetime.fromtimestamp(v / 1000, UTC) if k in _TIMESTAMPS and v is not None
            else v for k, v in record.items()}


def _orders(n: int) -> list[dict[str, Any]]:
    return [{**sample("OrderEvent"), "event_id": f"e{i}", "order_id": f"o-{i}"} for i in range(n)]


def test_confluent_serializer_bytes_read_by_wire_decoder(kafka_bootstrap: str, registry_url: str,
                                                         unique_name: str) -> None:
    topic = f"{unique_name}-orders"
    create_topics(kafka_bootstrap, topic)
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}),
                                load_schema_text("OrderEvent"))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    records = _orders(3)
    for r in records:
        value = serializer(r, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=r["order_id"].encode(), value=value)
    assert producer.flush(15) == 0
    source = RegistrySchemaSource(registry_url)
    decoder = WireDecoder.for_record(source, "OrderEvent")
    got = [decoder.decode(m.value()) for m in consume(kafka_bootstrap, topic, 3)]
    assert got == records
    assert len(decoder.cached_ids) == 1


def test_event_producer_bytes_read_by_confluent_deserializer(
        kafka_bootstrap: str, registry_url: str, unique_name: str) -> None:
    topic = f"{unique_name}-settlements"
    create_topics(kafka_bootstrap, topic)
    with_order = {**sample("SettlementEvent"), "order_id": "o-7", "settlement_line_id": "sl-1"}
    without = {**sample("SettlementEvent"), "order_id": None, "settlement_line_id": "sl-2"}
    with EventProducer(kafka_bootstrap, RegistrySchemaSource(registry_url)) as producer:
        producer.send(topic, with_order, record_name="SettlementEvent")
        producer.send(topic, without, record_name="SettlementEvent")
    assert producer.delivered == 2 and not producer.errors
    msgs = consume(kafka_bootstrap, topic, 2)
    assert [m.key() for m in msgs] == [b"o-7", b"sl-2"]  # null order_id: keyed by the line
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = [deserializer(m.value(), ctx) for m in msgs]
    assert got == [_as_datetimes(with_order), _as_datetimes(without)]


async def test_async_producer_round_trip(kafka_bootstrap: str, registry_url: str,
                                         unique_name: str) -> None:
    topic = f"{unique_name}-shipments"
    create_topics(kafka_bootstrap, topic)
    source = RegistrySchemaSource(registry_url)
    async with AsyncEventProducer(kafka_bootstrap, source) as producer:
        first = await producer.send_and_wait(topic, sample("ShipmentEvent"),
                                             record_name="ShipmentEvent")
        futures = [await producer.send(topic, {**sample("ShipmentEvent"), "event_id": f"e{i}"},
                                       record_name="ShipmentEvent") for i in range(5)]
        deliveries = [await f for f in futures]
    assert first.topic == topic and first.offset == 0
    assert [d.offset for d in deliveries] == [1, 2, 3, 4, 5]
    decoder = WireDecoder.for_record(source, "ShipmentEvent")
    msgs = consume(kafka_bootstrap, topic, 6)
    assert decoder.decode(msgs[0].value()) == SAMPLES["ShipmentEvent"]
    assert msgs[0].key() == b"o-1"
