"""confluent-kafka's own SchemaRegistryClient, AvroSerializer and AvroDeserializer against us."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

# The client's schema-registry module needs confluent-kafka's extras (authlib, cachetools).
for _extra in ("authlib", "cachetools"):
    pytest.importorskip(_extra, reason=f"confluent-kafka schema-registry extra {_extra} missing")

from confluent_kafka.schema_registry import (  # noqa: E402
    Schema,
    SchemaReference,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: E402


def order_schema(name: str, *extra: dict[str, object]) -> str:
    return json.dumps({
        "type": "record", "name": name, "namespace": "retail",
        "fields": [{"name": "order_id", "type": "string"},
                   {"name": "total_cents", "type": "long"}, *extra],
    })


@pytest.fixture
def client(registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry_url})


@pytest.fixture
def topic() -> str:
    return f"orders-{uuid.uuid4().hex[:10]}"


def test_register_lookup_and_evolve(client: SchemaRegistryClient, topic: str) -> None:
    subject = f"{topic}-value"
    name = "Order" + uuid.uuid4().hex[:6]
    v1 = Schema(order_schema(name), "AVRO")
    first = client.register_schema(subject, v1)
    assert client.register_schema(subject, v1) == first
    assert json.loads(client.get_schema(first).schema_str) == json.loads(v1.schema_str)
    found = client.lookup_schema(subject, v1)
    assert (found.schema_id, found.version) == (first, 1)
    v2 = Schema(order_schema(name, {"name": "note", "type": ["null", "string"],
                                    "default": None}), "AVRO")
    assert client.test_compatibility(subject, v2) is True
    second = client.register_schema(subject, v2)
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (second, 2)
    assert client.get_versions(subject) == [1, 2]
    assert client.get_version(subject, 1).schema_id == first
    assert subject in client.get_subjects()

    breaking = Schema(order_schema(name, {"name": "store", "type": "string"}), "AVRO")
    assert client.test_compatibility(subject, breaking) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, breaking)
    assert refused.value.http_status_code == 409 and refused.value.error_code == 409
    assert "store" in refused.value.error_message


def test_serializer_round_trip_with_auto_registration(
    client: SchemaRegistryClient, topic: str
) -> None:
    name = "Order" + uuid.uuid4().hex[:6]
    serializer = AvroSerializer(client, order_schema(name))
    ctx = SerializationContext(topic, MessageField.VALUE)
    payload = serializer({"order_id": "o-1", "total_cents": 1999}, ctx)
    # Confluent-compatible wire format: magic byte 0, then the 4-byte schema id.
    assert payload is not None and payload[0] == 0
    schema_id = int.from_bytes(payload[1:5], "big")
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id
    # A fresh client (no cache) resolves the id through our registry.
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    deserializer = AvroDeserializer(fresh)
    assert deserializer(payload, ctx) == {"order_id": "o-1", "total_cents": 1999}


def test_deserialize_old_data_with_evolved_reader(
    client: SchemaRegistryClient, topic: str
) -> None:
    name = "Order" + uuid.uuid4().hex[:6]
    ctx = SerializationContext(topic, MessageField.VALUE)
    old = AvroSerializer(client, order_schema(name))({"order_id": "o-2", "total_cents": 5}, ctx)
    v2 = order_schema(name, {"name": "channel", "type": "string", "default": "web"})
    client.register_schema(f"{topic}-value", Schema(v2, "AVRO"))
    reader = AvroDeserializer(client, schema_str=v2)
    assert reader(old, ctx) == {"order_id": "o-2", "total_cents": 5, "channel": "web"}


def test_references_through_the_client(client: SchemaRegistryClient, topic: str) -> None:
    ns = "ref" + uuid.uuid4().hex[:6]
    money = json.dumps({"type": "record", "name": "Money", "namespace": ns,
                        "fields": [{"name": "cents", "type": "long"},
                                   {"name": "currency", "type": "string"}]})
    client.register_schema(f"{topic}-money", Schema(money, "AVRO"))
    order = json.dumps({"type": "record", "name": "Order", "namespace": ns,
                        "fields": [{"name": "id", "type": "string"},
                                   {"name": "total", "type": f"{ns}.Money"}]})
    refs = [SchemaReference(f"{ns}.Money", f"{topic}-money", 1)]
    schema_id = client.register_schema(f"{topic}-value", Schema(order, "AVRO", refs))
    fetched = client.get_schema(schema_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [
        (f"{ns}.Money", f"{topic}-money", 1)]
    ctx = SerializationContext(topic, MessageField.VALUE)
    conf = {"auto.register.schemas": False, "use.latest.version": True}
    serializer = AvroSerializer(client, None, conf=conf)
    value = {"id": "o-3", "total": {"cents": 10, "currency": "EUR"}}
    payload = serializer(value, ctx)
    assert AvroDeserializer(SchemaRegistryClient({"url": client._rest_client.base_urls[0]}))(
        payload, ctx) == value


def test_delete_soft_and_hard(client: SchemaRegistryClient, topic: str) -> None:
    subject = f"{topic}-value"
    name = "Order" + uuid.uuid4().hex[:6]
    client.register_schema(subject, Schema(order_schema(name), "AVRO"))
    client.register_schema(subject, Schema(order_schema(name, {"name": "x", "type": "int",
                                                                "default": 1}), "AVRO"))
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    with pytest.raises(SchemaRegistryError) as err:
        client.delete_subject(subject, permanent=True)
    assert err.value.error_code == 40405
    assert client.delete_subject(subject) == [1]
    assert client.delete_subject(subject, permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_versions(subject)
    assert gone.value.error_code == 40401


def test_config_and_mode_through_the_client(client: SchemaRegistryClient, topic: str) -> None:
    subject = f"{topic}-value"
    assert client.set_compatibility(subject, "FULL_TRANSITIVE")["compatibility"] == (
        "FULL_TRANSITIVE")
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert client.get_compatibility() == "BACKWARD"
    client.register_schema(subject, Schema('"string"', "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(subject, Schema('"bytes"', "AVRO"))  # bytes->string is fine
        client.register_schema(subject, Schema('"int"', "AVRO"))
    assert err.value.error_code == 409
    assert client.update_mode(subject, "READONLY") == "READONLY"
    assert client.get_mode(subject) == "READONLY"
    with pytest.raises(SchemaRegistryError) as readonly:
        client.register_schema(subject, Schema('"long"', "AVRO"))
    assert readonly.value.error_code == 42205
