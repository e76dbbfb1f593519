"""The compiled Avro readers (streams/avro_reader.py) read exactly what fastavro reads, and
refuse, never misread, bytes they cannot read."""

from __future__ import annotations

import functools
import io
import struct
from typing import Any

import pytest
from fastavro import schemaless_reader

from streams.avro_reader import Unreadable, compile_reader
from streams.schema_source import InMemorySchemaSource
from streams.serde import TruncatedRecord, WireDecoder, WireEncoder, parse_for_io
from tables.schema_files import list_schemas, load_schema_text
from tests.serde.test_avro_writer import fastavro_bytes, traffic  # noqa: F401 (a fixture)


@functools.cache
def reader_of(name: str) -> Any:
    reader = compile_reader(parsed(name))
    assert reader is not None, f"{name} should compile"
    return reader


@functools.cache
def parsed(name: str) -> dict[str, Any]:
    return parse_for_io(load_schema_text(name))


def fastavro_read(name: str, body: bytes) -> dict[str, Any]:
    record: dict[str, Any] = schemaless_reader(io.BytesIO(body), parsed(name), None)
    return record


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types, dict keys in the same order (True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def read_all(name: str, body: bytes) -> dict[str, Any]:
    record, end = reader_of(name)(body, 0)
    assert end == len(body), f"{name}: read {end} of {len(body)} bytes"
    return record


def test_every_schema_of_the_product_compiles() -> None:
    assert all(compile_reader(parse_for_io(load_schema_text(n))) for n in list_schemas())


def test_generated_traffic_is_read_as_fastavro_reads_it(
        traffic: list[tuple[str, dict[str, Any]]]) -> None:  # noqa: F811
    assert len({name for name, _ in traffic}) >= 7
    for name, record in traffic:
        body = fastavro_bytes(name, record)
        assert same(read_all(name, body), fastavro_read(name, body)), name


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 2**31,
                                   -(2**31) - 1, 2**56, 2**63 - 1, -(2**63), 1_795_000_000_000])
def test_longs_at_every_varint_boundary(traffic: list[tuple[str, dict[str, Any]]],  # noqa: F811
                                        value: int) -> None:
    state = next(r for n, r in traffic if n == "FulfillmentState")
    edited = {**state, "version": value, "order_total": ~value, "delivered_at": value}
    assert same(read_all("FulfillmentState", fastavro_bytes("FulfillmentState", edited)), edited)


@pytest.mark.parametrize("text", ["", "x" * 63, "y" * 64, "é" * 40, "🚚" * 100, "a\x00b"])
def test_strings_of_every_length_and_alphabet(traffic: list[tuple[str, dict[str, Any]]],  # noqa: F811
                                              text: str) -> None:
    state = next(r for n, r in traffic if n == "FulfillmentState")
    edited = {**state, "order_id": text, "customer_ref": text, "flags": [text] * 70,
              "lines": [], "open_exceptions": [], "accepted_at": None}
    assert same(read_all("FulfillmentState", fastavro_bytes("FulfillmentState", edited)), edited)


def test_every_cut_of_a_record_is_refused(traffic: list[tuple[str, dict[str, Any]]]) -> None:  # noqa: F811
    for name in ("OrderEvent", "FulfillmentState", "SlaAlert"):
        body = fastavro_bytes(name, next(r for n, r in traffic if n == name))
        for cut in range(len(body)):
            with pytest.raises((Unreadable, IndexError, UnicodeDecodeError, struct.error)):
                read_all(name, body[:cut])


def test_bad_indexes_lengths_and_text_are_refused(
        traffic: list[tuple[str, dict[str, Any]]]) -> None:  # noqa: F811
    # FulfillmentState starts with order_id: a string (length varint, then UTF-8).
    state = next(r for n, r in traffic if n == "FulfillmentState")
    body = fastavro_bytes("FulfillmentState", {**state, "order_id": "ab"})
    assert body[:3] == b"\x04ab"
    read = reader_of("FulfillmentState")
    with pytest.raises(Unreadable, match="length -1"):
        read(b"\x01" + body[3:], 0)  # zig-zag 0x01 = -1
    with pytest.raises(UnicodeDecodeError):
        read(b"\x04\xff\xfe" + body[3:], 0)
    with pytest.raises(Unreadable, match="varint longer"):
        read(b"\xff" * 11, 0)


def test_an_enum_index_out_of_range_is_refused() -> None:
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["a", "b"]}},
        {"name": "u", "type": ["null", "long"]}]}
    read = compile_reader(schema)
    assert read is not None
    assert read(b"\x02\x02\x06", 0) == ({"s": "b", "u": 3}, 3)
    with pytest.raises(Unreadable, match="enum index 2"):
        read(b"\x04\x00", 0)
    with pytest.raises(Unreadable, match="enum index -1"):
        read(b"\x01\x00", 0)
    with pytest.raises(Unreadable, match="union index byte 4"):
        read(b"\x00\x04", 0)


def test_blocks_with_a_byte_size_and_maps_are_read() -> None:
    schema = {"type": "record", "name": "B", "fields": [
        {"name": "xs", "type": {"type": "array", "items": "int"}},
        {"name": "m", "type": {"type": "map", "values": "string"}}]}
    read = compile_reader(schema)
    assert read is not None
    # xs: a block of -2 items (negative count: its byte size follows), then 0; m: {"k": "v"}.
    data = b"\x03\x04\x02\x04\x00" + b"\x02\x02k\x02v\x00"
    assert read(data, 0) == ({"xs": [1, 2], "m": {"k": "v"}}, len(data))


def test_unions_beyond_null_or_one_type_are_left_to_fastavro() -> None:
    assert compile_reader({"type": "record", "name": "U", "fields": [
        {"name": "x", "type": ["int", "string"]}]}) is None


def test_the_decoder_reads_with_it_and_keeps_fastavros_reasons(
        traffic: list[tuple[str, dict[str, Any]]]) -> None:  # noqa: F811
    source = InMemorySchemaSource()
    encoder = WireEncoder(source, "orders-value", load_schema_text("OrderEvent"))
    decoder = WireDecoder.for_record(source, "OrderEvent")
    order = next(r for n, r in traffic if n == "OrderEvent")
    data = encoder.encode(order)
    assert same(decoder.decode(data), fastavro_read("OrderEvent", data[5:]))
    assert decoder._compiled  # the compiled reader took it
    assert same(decoder.decode(data), fastavro_read("OrderEvent", data[5:]))
    with pytest.raises(TruncatedRecord, match="ended early"):
        decoder.decode(data[:-3])
