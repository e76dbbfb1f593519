"""Wire format, error classes and caching of WireDecoder/WireEncoder (in-memory schema source)."""

from __future__ import annotations

import io
import json

import pytest
from fastavro import parse_schema, schemaless_writer
from faust.serializers import codecs

from streams.schema_source import InMemorySchemaSource
from streams.serde import (
    BadMagicByte,
    CorruptRecord,
    DecodeError,
    IncompatibleSchema,
    SubjectNotRegistered,
    TruncatedRecord,
    UnknownSchemaId,
    WireDecoder,
    WireEncoder,
    register_faust_codec,
)
from tables.schema_files import list_schemas, load_schema, load_schema_text

from .helpers import SAMPLES, codec_pair, order_v2_text, sample


@pytest.mark.parametrize("name", list_schemas())
def test_round_trip_every_schema(name: str) -> None:
    enc, dec = codec_pair(name)
    data = enc.encode(sample(name))
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == enc.schema_id
    decoded = dec.decode(data)
    assert decoded == SAMPLES[name]


@pytest.mark.parametrize("name", list_schemas())
def test_body_is_plain_avro_binary_of_the_registered_schema(name: str) -> None:
    # Stripping logicalType must not change the bytes: compare with fastavro on the .avsc as is.
    enc, _ = codec_pair(name)
    raw = io.BytesIO()
    schemaless_writer(raw, parse_schema(load_schema(name)), sample(name))
    assert enc.encode(sample(name))[5:] == raw.getvalue()


def test_timestamps_decode_as_int_millis() -> None:
    enc, dec = codec_pair("OrderEvent")
    out = dec.decode(enc.encode(sample("OrderEvent")))
    assert type(out["event_time"]) is int
    assert out["event_time"] == SAMPLES["OrderEvent"]["event_time"]
    assert type(out["promised_ship_by"]) is int


def test_encoder_reuses_its_buffer_without_leaking_previous_records() -> None:
    enc, dec = codec_pair("ShipmentEvent")
    big = sample("ShipmentEvent")
    big["lines"] = big["lines"] * 50
    small = sample("ShipmentEvent")
    first, second = enc.encode(big), enc.encode(small)
    assert len(second) < len(first)
    assert dec.decode(second) == small and dec.decode(first) == big


def test_bad_magic_byte_json() -> None:
    _, dec = codec_pair("OrderEvent")
    with pytest.raises(BadMagicByte) as err:
        dec.decode(b'{"order_id": "o-1"}')
    assert "0x7b" in str(err.value) and "JSON" in str(err.value)
    assert "magic byte 0x00" in str(err.value)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x01"])
def test_bad_magic_byte_shorter_than_header(data: bytes) -> None:
    _, dec = codec_pair("OrderEvent")
    with pytest.raises(BadMagicByte, match="fewer than the 5-byte"):
        dec.decode(data)


def test_unknown_schema_id_is_reported_and_not_refetched() -> None:
    source = InMemorySchemaSource()
    dec = WireDecoder.for_record(source, "OrderEvent")
    data = b"\x00" + (4242).to_bytes(4, "big") + b"\x02"
    for _ in range(5):
        with pytest.raises(UnknownSchemaId) as err:
            dec.decode(data)
        assert err.value.schema_id == 4242 and "4242" in str(err.value)
        assert "FSTREAMS_REGISTRY_URL" in str(err.value)
    assert source.fetches == 1  # a poison stream must not hammer the registry


@pytest.mark.parametrize("cut", [1, 10, 40, -1])
def test_truncated_record(cut: int) -> None:
    enc, dec = codec_pair("OrderEvent")
    data = enc.encode(sample("OrderEvent"))
    with pytest.raises(TruncatedRecord) as err:
        dec.decode(data[: 5 + cut] if cut > 0 else data[:cut])
    assert isinstance(err.value, CorruptRecord)
    assert f"schema id {enc.schema_id}" in str(err.value) and "OrderEvent" in str(err.value)


def test_trailing_bytes_are_corrupt() -> None:
    enc, dec = codec_pair("ShipmentEvent")
    with pytest.raises(CorruptRecord, match="left over"):
        dec.decode(enc.encode(sample("ShipmentEvent")) + b"\x00\x00")


def test_bad_enum_index_is_corrupt() -> None:
    enc, dec = codec_pair("ShipmentEvent")
    rec = sample("ShipmentEvent")
    rec.update(event_id="", source_system="", correlation_id="", order_id="", shipment_id="")
    data = bytearray(enc.encode(rec))
    # header(5), event_id(1), event_time (6-byte varint), 4 empty strings (1 each) -> status
    data[5 + 1 + 6 + 4] = 0x7E  # enum index 63: no such symbol
    with pytest.raises(CorruptRecord) as err:
        dec.decode(bytes(data))
    assert not isinstance(err.value, TruncatedRecord)


def test_record_on_the_wrong_topic_is_incompatible() -> None:
    source = InMemorySchemaSource()
    enc, _ = codec_pair("ShipmentEvent", source)
    dec = WireDecoder.for_record(source, "OrderEvent")
    with pytest.raises(IncompatibleSchema, match="wrong topic"):
        dec.decode(enc.encode(sample("ShipmentEvent")))


def test_every_decode_error_is_a_decode_error() -> None:
    for cls in (BadMagicByte, UnknownSchemaId, CorruptRecord, TruncatedRecord, IncompatibleSchema):
        assert issubclass(cls, DecodeError)


def test_cache_never_refetches() -> None:
    source = InMemorySchemaSource()
    orders, dec = codec_pair("OrderEvent", source)
    v2 = WireEncoder(source, "t-OrderEvent-value", order_v2_text())
    payloads = [orders.encode(sample("OrderEvent")), v2.encode(sample("OrderEvent"))]
    for _ in range(500):
        for p in payloads:
            dec.decode(p)
    assert source.fetches == 2
    assert dec.cached_ids == sorted({orders.schema_id, v2.schema_id})
    for _ in range(500):
        orders.encode(sample("OrderEvent"))
    assert source.registrations == 2  # one per encoder, at first use


def test_schema_evolution_in_memory() -> None:
    source = InMemorySchemaSource()
    v1 = WireEncoder(source, "o-value", load_schema_text("OrderEvent"))
    v2 = WireEncoder(source, "o-value", order_v2_text())
    old_reader = WireDecoder.for_record(source, "OrderEvent")
    new_reader = WireDecoder(source, order_v2_text())
    new_data = v2.encode({**sample("OrderEvent"), "gift_note": "for you"})
    old_data = v1.encode(sample("OrderEvent"))
    assert old_reader.decode(new_data) == SAMPLES["OrderEvent"]  # unknown field dropped
    assert new_reader.decode(old_data) == {**SAMPLES["OrderEvent"], "gift_note": None}
    assert new_reader.decode(new_data)["gift_note"] == "for you"


def test_no_reader_schema_returns_writer_shape() -> None:
    source = InMemorySchemaSource()
    v2 = WireEncoder(source, "o-value", order_v2_text())
    data = v2.encode({**sample("OrderEvent"), "gift_note": "x"})
    assert WireDecoder(source).decode(data)["gift_note"] == "x"


def test_require_existing_subject() -> None:
    source = InMemorySchemaSource()
    enc = WireEncoder(source, "orders-value", load_schema_text("OrderEvent"), auto_register=False)
    with pytest.raises(SubjectNotRegistered) as err:
        enc.encode(sample("OrderEvent"))
    assert "'orders-value' does not exist" in str(err.value)
    assert "/subjects/orders-value/versions" in str(err.value)
    source.register("orders-value", load_schema_text("OrderEvent"))
    assert enc.encode(sample("OrderEvent"))[0] == 0
    v2 = WireEncoder(source, "orders-value", order_v2_text(), auto_register=False)
    with pytest.raises(SubjectNotRegistered, match=r"this version of fulfillment\.v1\.OrderEvent"):
        v2.resolve()


def test_faust_codec() -> None:
    enc, dec = codec_pair("ShipmentEvent")
    register_faust_codec(dec, enc, name="avro-wire-test-shipments")
    data = codecs.dumps("avro-wire-test-shipments", sample("ShipmentEvent"))
    assert data[0] == 0
    assert codecs.loads("avro-wire-test-shipments", data) == SAMPLES["ShipmentEvent"]


def test_encode_error_points_to_validation() -> None:
    enc, _ = codec_pair("ShipmentEvent")
    bad = {**sample("ShipmentEvent"), "lines": [{"line_id": "l1", "quantity": "two"}]}
    with pytest.raises(ValueError, match=r"streams\.validation"):
        enc.encode(bad)
    assert json.loads(enc.schema_text)["name"] == "ShipmentEvent"
