"""Parsing, validation, Parsing Canonical Form and fingerprints of Avro schemas."""

from __future__ import annotations

import json

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import parse_schema as fastavro_parse
from fastavro.schema import to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from registry_strategies import avro_schemas

from registry.avro_types import Enum, Record, Union
from registry.canonical import SchemaParseError, canonical_form, fingerprint64, parse_schema

ORDER = {
    "type": "record", "name": "Order", "namespace": "com.acme", "doc": "an order",
    "fields": [
        {"name": "id", "type": "string", "doc": "key"},
        {"name": "amount", "type": {"type": "fixed", "name": "Money", "size": 8}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "DONE"],
                                    "default": "NEW"}},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [
                {"name": "sku", "type": "string"}, {"name": "price", "type": "Money"}]}}},
        {"name": "next", "type": ["null", "Order"], "default": None},
        {"name": "tags", "type": {"type": "map", "values": "long"}, "default": {}},
    ],
}


def test_parses_named_types_and_recursion() -> None:
    parsed = parse_schema(json.dumps(ORDER))
    root = parsed.root
    assert isinstance(root, Record) and root.fullname == "com.acme.Order"
    nxt = root.field_named("next")
    assert nxt is not None and isinstance(nxt.type, Union)
    assert nxt.type.branches[1] is root  # recursion resolves to the same node
    status = root.field_named("status")
    assert status is not None and isinstance(status.type, Enum) and status.type.default == "NEW"
    assert set(parsed.named) == {"com.acme.Order", "com.acme.Money", "com.acme.Status",
                                 "com.acme.Line"}


def test_canonical_form_matches_the_specification_example() -> None:
    parsed = parse_schema(json.dumps(ORDER))
    expected = to_parsing_canonical_form(fastavro_parse(ORDER))
    assert parsed.canonical == expected
    assert "doc" not in parsed.canonical and "default" not in parsed.canonical


def test_fingerprint_is_crc64_avro() -> None:
    parsed = parse_schema(json.dumps(ORDER))
    # fastavro renders the 64-bit fingerprint as little-endian hex.
    expected = fastavro_fingerprint(parsed.canonical, "CRC-64-AVRO")
    assert parsed.fingerprint.to_bytes(8, "little").hex() == expected
    assert fingerprint64(b'"int"') == parse_schema('"int"').fingerprint


@pytest.mark.parametrize(
    "text", ['"int"', '{"type": "int"}', '{"type":"int","logicalType":"date"}']
)
def test_primitives_have_the_simple_canonical_form(text: str) -> None:
    assert parse_schema(text).canonical == '"int"'


def test_normalized_text_ignores_whitespace_only() -> None:
    a = parse_schema('{ "type" : "record", "name": "A", "fields": [] }')
    b = parse_schema('{"type":"record","name":"A","fields":[]}')
    c = parse_schema('{"type":"record","name":"A","doc":"x","fields":[]}')
    assert a.normalized == b.normalized != c.normalized
    assert a.canonical == c.canonical


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ("not json", "not valid JSON"),
        ('"Unknown"', "unknown type 'Unknown'"),
        ('{"type": "record", "name": "1bad", "fields": []}', "invalid name"),
        ('{"type": "record", "name": "A"}', "'fields' list"),
        ('{"type": "record", "name": "A", "fields": [{"name": "x", "type": "int"},'
         ' {"name": "x", "type": "long"}]}', "two fields named 'x'"),
        ('{"type": "record", "name": "A", "fields": [{"name": "x", "type": "int",'
         ' "default": "zero"}]}', "invalid default for field 'x'"),
        ('{"type": "record", "name": "A", "fields": [{"name": "x", "type": "int",'
         ' "default": 2147483648}]}', "invalid default"),
        ('{"type": "record", "name": "A", "fields": [{"name": "x", "type": ["null", "int"],'
         ' "default": "s"}]}', "matches no branch"),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "duplicate symbols"),
        ('{"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}', "is not a symbol"),
        ('{"type": "fixed", "name": "F", "size": -1}', "non-negative"),
        ('{"type": "array"}', "no 'items'"),
        ('{"type": "map"}', "no 'values'"),
        ('["int", "int"]', "contains 'int' twice"),
        ('["null", ["int"]]', "directly contains another union"),
        ('[{"type": "enum", "name": "E", "symbols": ["A"]}, "E", "null"]', "contains 'E' twice"),
        ('{"type": "record", "name": "A", "fields": [{"name": "a", "type":'
         ' {"type": "fixed", "name": "A", "size": 1}}]}', "can't redefine 'A'"),
        ('{"type": {"type": "int"}}', "no valid 'type'"),
        ('{"type": "record", "name": "int", "fields": []}', "redefines a primitive"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_invalid_schemas_are_rejected_with_a_reason(schema: str, reason: str) -> None:
    with pytest.raises(SchemaParseError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        parse_schema(schema)


def test_union_default_may_match_any_branch() -> None:
    parse_schema('{"type": "record", "name": "A", "fields": [{"name": "x",'
                 ' "type": ["null", "int"], "default": 3}]}')


def test_named_types_from_references_are_known() -> None:
    money = parse_schema('{"type": "fixed", "name": "Money", "namespace": "com.acme", "size": 8}')
    order = parse_schema(
        '{"type": "record", "name": "Order", "namespace": "com.acme",'
        ' "fields": [{"name": "amount", "type": "Money"}]}', money.named
    )
    assert order.root.fields[0].type is money.root  # type: ignore[attr-defined]
    # The canonical form is self-contained: a referenced type is written out where first used.
    assert order.canonical.endswith('"type":{"name":"com.acme.Money","type":"fixed","size":8}}]}')


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(avro_schemas())
def test_canonical_form_agrees_with_fastavro(schema: object) -> None:
    parsed = parse_schema(json.dumps(schema))
    assert parsed.canonical == to_parsing_canonical_form(fastavro_parse(schema))
    assert canonical_form(parse_schema(parsed.canonical).root) == parsed.canonical
