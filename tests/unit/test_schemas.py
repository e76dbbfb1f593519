"""Every contract parses with both Avro implementations and round-trips a sample record."""

from __future__ import annotations

import io
import json
from typing import Any

import avro.schema
import fastavro
import pytest

from tables import schema_files

from .samples import SAMPLES

ALL = schema_files.list_schemas()


def _enums(schema: Any) -> list[dict[str, Any]]:
    """Every enum definition nested anywhere in ``schema``."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            found.append(schema)
        for value in schema.values():
            found.extend(_enums(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(_enums(value))
    return found


def test_every_expected_record_has_a_schema() -> None:
    expected = set(schema_files.INPUT_RECORDS) | set(schema_files.DERIVED_RECORDS)
    assert set(ALL) == expected


@pytest.mark.parametrize("name", ALL)
def test_schema_parses_with_fastavro_and_avro(name: str) -> None:
    schema = schema_files.load_schema(name)
    assert schema["name"] == name
    assert schema["namespace"] == schema_files.NAMESPACE
    fastavro.parse_schema(schema)
    avro.schema.parse(schema_files.load_schema_text(name))


@pytest.mark.parametrize("name", ALL)
def test_every_enum_has_a_default_so_it_can_evolve(name: str) -> None:
    for enum in _enums(schema_files.load_schema(name)):
        assert enum.get("default") in enum["symbols"], enum["name"]


@pytest.mark.parametrize("name", schema_files.INPUT_RECORDS)
def test_input_events_share_the_envelope(name: str) -> None:
    fields = {f["name"]: f for f in schema_files.load_schema(name)["fields"]}
    assert fields["event_id"]["type"] == "string"
    assert fields["event_time"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["source_system"]["type"] == "string"
    assert fields["correlation_id"]["type"] == "string"
    order_id_type = ["null", "string"] if name == "SettlementEvent" else "string"
    assert fields["order_id"]["type"] == order_id_type


@pytest.mark.parametrize("name", ALL)
def test_sample_round_trips_through_fastavro(name: str) -> None:
    # Decode the way our serde does: logical types stripped, so timestamps stay int millis.
    schema = fastavro.parse_schema(schema_files.strip_logical_types(schema_files.load_schema(name)))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, SAMPLES[name])
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, schema) == SAMPLES[name]


@pytest.mark.parametrize("name", ALL)
def test_wire_bytes_decode_with_logical_types_too(name: str) -> None:
    # Stripping logicalType must not change the wire format.
    stripped = fastavro.parse_schema(
        schema_files.strip_logical_types(schema_files.load_schema(name))
    )
    full = fastavro.parse_schema(schema_files.load_schema(name))
    a, b = io.BytesIO(), io.BytesIO()
    fastavro.schemaless_writer(a, stripped, SAMPLES[name])
    fastavro.schemaless_writer(b, full, SAMPLES[name])
    assert a.getvalue() == b.getvalue()


def test_unknown_enum_symbol_from_a_newer_writer_reads_as_unknown() -> None:
    reader = schema_files.load_schema("ShipmentEvent")
    writer = json.loads(json.dumps(reader))
    status = next(f for f in writer["fields"] if f["name"] == "status")
    status["type"]["symbols"].insert(0, "returned_to_sender")
    record = dict(SAMPLES["ShipmentEvent"], status="returned_to_sender")
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), record)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(
        buf, fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    )
    assert decoded["status"] == "unknown"


def test_topic_mapping() -> None:
    assert schema_files.record_for_topic("orders") == "OrderEvent"
    assert schema_files.record_for_topic("shipments") == "ShipmentEvent"
    assert schema_files.record_for_topic("returns") == "ReturnEvent"
    assert schema_files.record_for_topic("settlements") == "SettlementEvent"
    assert schema_files.load_topic_schema("returns")["name"] == "ReturnEvent"
    with pytest.raises(KeyError):
        schema_files.record_for_topic("payments")


def test_schemas_dir_override(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Thing.avsc").write_text('{"type": "record", "name": "Thing", "fields": []}')
    monkeypatch.setenv(schema_files.SCHEMAS_DIR_ENV, str(tmp_path))
    assert schema_files.list_schemas() == ["Thing"]
    assert schema_files.load_schema("Thing")["name"] == "Thing"
    with pytest.raises(KeyError):
        schema_files.load_schema("OrderEvent")
