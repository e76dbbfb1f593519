"""The compiled Avro writers write exactly what fastavro writes, and refuse what it refuses."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import schemaless_writer

from streams import avro_writer
from streams.avro_writer import compile_writer
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.schema_source import InMemorySchemaSource
from streams.serde import EncodeError, WireEncoder, parse_for_io
from tables.order_pipeline import PipelineConfig
from tables.order_runner import OrderRunner
from tables.schema_files import (
    INPUT_TOPIC_KINDS,
    list_schemas,
    load_schema,
    load_schema_text,
    record_for_topic,
    strip_logical_types,
)

OUTPUT_SCHEMAS = {"state": "FulfillmentState", "mismatch": "ReconciliationMismatch",
                  "alert": "SlaAlert"}


def fastavro_bytes(name: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_for_io(load_schema_text(name)), record)
    return buf.getvalue()


def writer_of(name: str) -> Any:
    writer = compile_writer(strip_logical_types(load_schema(name)))
    assert writer is not None, f"{name} should compile"
    return writer


@pytest.fixture(scope="module")
def traffic() -> list[tuple[str, dict[str, Any]]]:
    """(schema name, record) for every input event and every derived record of two seeds."""
    records: list[tuple[str, dict[str, Any]]] = []
    for seed in (1, 2):
        generated = generate(GeneratorConfig(orders=150, seed=seed))
        good = [ev for ev in generated.events if not ev.is_bad and ev.value is not None]
        records += [(record_for_topic(ev.topic), ev.value) for ev in good]
        runner = OrderRunner(PipelineConfig(), 300_000)
        events = [(ev.key or ev.value["settlement_line_id"], INPUT_TOPIC_KINDS[ev.topic],
                   ev.value) for ev in good]
        for start in range(0, len(events), 100):
            for output, _, item in runner.process_batch(events[start:start + 100]):
                if output in OUTPUT_SCHEMAS:
                    records.append((OUTPUT_SCHEMAS[output], item))
    return records


def test_every_schema_of_the_product_compiles() -> None:
    assert all(compile_writer(strip_logical_types(load_schema(n))) for n in list_schemas())


def test_generated_traffic_is_written_byte_for_byte_as_fastavro_writes_it(
        traffic: list[tuple[str, dict[str, Any]]]) -> None:
    kinds = {name for name, _ in traffic}
    assert set(OUTPUT_SCHEMAS.values()) <= kinds and len(kinds) >= 7
    writers = {name: writer_of(name) for name in kinds}
    for name, record in traffic:
        assert writers[name](record) == fastavro_bytes(name, record), name


@pytest.mark.parametrize("value", [0, 63, 64, -64, -65, 127, 128, 2**31, -(2**31) - 1,
                                   2**63 - 1, -(2**63), 1_795_000_000_000])
def test_longs_at_every_varint_boundary(traffic: list[tuple[str, dict[str, Any]]],
                                        value: int) -> None:
    state = next(r for n, r in traffic if n == "FulfillmentState")
    edited = {**state, "version": value, "order_total": ~value, "delivered_at": value}
    assert writer_of("FulfillmentState")(edited) == fastavro_bytes("FulfillmentState", edited)


def test_a_float_equal_to_a_long_already_written_is_still_refused(
        traffic: list[tuple[str, dict[str, Any]]]) -> None:
    # Larger longs are memoised; a float that hashes like one must not take its bytes.
    state = next(r for n, r in traffic if n == "FulfillmentState")
    encoder = WireEncoder(InMemorySchemaSource(), "fulfillment-states-value",
                          load_schema_text("FulfillmentState"))
    encoder.encode({**state, "version": 1_795_000_000_000})
    with pytest.raises(EncodeError, match="FulfillmentState"):
        encoder.encode({**state, "version": 1_795_000_000_000.0})


def test_the_long_memo_is_bounded_and_stays_right_after_it_is_cleared(
        traffic: list[tuple[str, dict[str, Any]]]) -> None:
    state = next(r for n, r in traffic if n == "FulfillmentState")
    write = writer_of("FulfillmentState")
    memo = avro_writer._RUNTIME["_MEMO"]
    for i in range(avro_writer._MEMO_MAX + 10):
        write({**state, "version": 10_000 + i})
        assert len(memo) <= avro_writer._MEMO_MAX
    for value in (10_000, 10_000 + avro_writer._MEMO_MAX + 9, 1_795_000_000_000):
        edited = {**state, "version": value}
        assert write(edited) == fastavro_bytes("FulfillmentState", edited)


@pytest.mark.parametrize("text", ["", "x" * 63, "y" * 64, "é" * 40, "🚚" * 100, "a\x00b"])
def test_strings_of_every_length_and_alphabet(traffic: list[tuple[str, dict[str, Any]]],
                                              text: str) -> None:
    state = next(r for n, r in traffic if n == "FulfillmentState")
    edited = {**state, "order_id": text, "customer_ref": text, "flags": [text] * 70}
    assert writer_of("FulfillmentState")(edited) == fastavro_bytes("FulfillmentState", edited)


@pytest.mark.parametrize("field,bad", [
    ("version", 1.5), ("version", "7"), ("order_id", None), ("order_id", 7),
    ("reconciled", 1), ("fulfillment_status", "teleported"), ("lines", None),
    ("accepted_at", "yesterday"), ("order_total", 2**63),
])
def test_a_wrong_value_is_an_encode_error(traffic: list[tuple[str, dict[str, Any]]],
                                          field: str, bad: Any) -> None:
    state = next(r for n, r in traffic if n == "FulfillmentState")
    encoder = WireEncoder(InMemorySchemaSource(), "fulfillment-states-value",
                          load_schema_text("FulfillmentState"))
    encoder.encode(state)
    with pytest.raises(EncodeError, match="FulfillmentState"):
        encoder.encode({**state, field: bad})
    missing = dict(state)
    del missing["order_id"]
    with pytest.raises(EncodeError):
        encoder.encode(missing)


def test_a_missing_field_with_a_default_takes_it() -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "long"}, {"name": "b", "type": ["null", "string"], "default": None},
        {"name": "c", "type": {"type": "enum", "name": "E", "symbols": ["x", "y"]},
         "default": "y"}]}
    writer = compile_writer(schema)
    assert writer is not None
    buf = io.BytesIO()
    schemaless_writer(buf, parse_for_io(schema), {"a": 5})
    assert writer({"a": 5}) == buf.getvalue()


def test_unions_beyond_null_or_one_type_are_left_to_fastavro() -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": ["null", "string", "long"]}]}
    assert compile_writer(schema) is None
    encoder = WireEncoder(InMemorySchemaSource(), "r-value", schema)
    assert encoder.encode({"a": 5})[5:] == b"\x04\x0a"
