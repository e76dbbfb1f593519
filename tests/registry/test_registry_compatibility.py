"""Compatibility rules against the Avro specification's schema resolution.

Example tests pin each rule; property tests check the rules on random schemas, and check the
checker against an independent implementation: whenever it calls a reader compatible with a
writer, fastavro must decode random writer data with that reader.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_strategies import avro_schemas, data_for, field_types, name_types

from registry.canonical import parse_schema
from registry.compatibility import Level, PreviousVersion, check_compatibility, reader_problems


def rec(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def problems(reader: Any, writer: Any) -> list[str]:
    r = parse_schema(json.dumps(reader)).root
    w = parse_schema(json.dumps(writer)).root
    return [str(p) for p in reader_problems(r, w)]


def compatible(reader: Any, writer: Any) -> bool:
    return not problems(reader, writer)


# -- the rules one by one -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("writer", "reader"),
    [("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
     ("float", "double"), ("string", "bytes"), ("bytes", "string")],
)
def test_promotions(writer: str, reader: str) -> None:
    assert compatible(reader, writer)


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("long", "int"), ("double", "float"), ("float", "long"), ("string", "int"), ("null", "int"),
     ("boolean", "int"), ("bytes", "long")],
)
def test_no_demotions(writer: str, reader: str) -> None:
    [message] = problems(reader, writer)
    assert message.startswith("TYPE_MISMATCH") and writer in message and reader in message


def test_reader_field_without_default_missing_in_writer_names_the_field() -> None:
    writer = rec({"name": "id", "type": "string"})
    reader = rec({"name": "id", "type": "string"}, {"name": "qty", "type": "int"})
    [message] = problems(reader, writer)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in message and "'qty'" in message
    assert "/fields/1" in message
    reader["fields"][1]["default"] = 0
    assert compatible(reader, writer)


def test_writer_fields_unknown_to_reader_are_skipped() -> None:
    writer = rec({"name": "id", "type": "string"}, {"name": "gone", "type": "int"})
    assert compatible(rec({"name": "id", "type": "string"}), writer)


def test_field_aliases_match_renamed_fields() -> None:
    writer = rec({"name": "old", "type": "int"})
    reader = rec({"name": "new", "type": "long", "aliases": ["old"]})
    assert compatible(reader, writer)
    assert not compatible(rec({"name": "new", "type": "long"}), writer)


def test_record_names_must_match_unless_aliased() -> None:
    writer = rec({"name": "a", "type": "int"}, name="Old")
    assert "NAME_MISMATCH" in problems(rec({"name": "a", "type": "int"}, name="New"), writer)[0]
    assert compatible(rec({"name": "a", "type": "int"}, name="New", aliases=["Old"]), writer)


def test_enum_symbols_and_enum_default() -> None:
    writer = {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}
    narrow = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    [message] = problems(narrow, writer)
    assert "MISSING_ENUM_SYMBOLS" in message and "'C'" in message
    assert compatible({**narrow, "default": "A"}, writer)
    assert compatible(writer, narrow)


def test_fixed_sizes_must_match() -> None:
    f8 = {"type": "fixed", "name": "F", "size": 8}
    [message] = problems({**f8, "size": 16}, f8)
    assert "FIXED_SIZE_MISMATCH" in message and "16" in message and "8" in message
    assert compatible(f8, dict(f8))


def test_unions() -> None:
    # Writer union: every branch must be readable.
    assert compatible(["null", "string"], ["null", "string"])
    assert compatible(["null", "string", "int"], ["null", "string"])
    [message] = problems(["null", "string"], ["null", "string", "int"])
    assert "MISSING_UNION_BRANCH" in message and "int" in message
    # Non-union writer read by a union: some branch must match (promotions count).
    assert compatible(["null", "long"], "int")
    assert not compatible(["null", "string"], "int")
    # Union writer read by a non-union reader: each branch must match the reader.
    assert compatible("long", ["int", "long"])
    assert not compatible("string", ["null", "string"])


def test_arrays_and_maps_recurse() -> None:
    assert compatible({"type": "array", "items": "long"}, {"type": "array", "items": "int"})
    [message] = problems({"type": "map", "values": "int"}, {"type": "map", "values": "long"})
    assert "/values" in message
    assert not compatible({"type": "array", "items": "int"}, {"type": "map", "values": "int"})


def test_nested_record_messages_say_which_field() -> None:
    inner_w = rec({"name": "sku", "type": "string"}, name="Line")
    inner_r = rec({"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}, name="Line")
    writer = rec({"name": "line", "type": inner_w}, name="Order")
    reader = rec({"name": "line", "type": inner_r}, name="Order")
    [message] = problems(reader, writer)
    assert "'line'" in message and "'qty'" in message and "/fields/0/type/fields/1" in message


def test_recursive_types_terminate() -> None:
    node = rec({"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]},
               name="Node")
    assert compatible(node, copy.deepcopy(node))
    wider = copy.deepcopy(node)
    wider["fields"][0]["type"] = "long"
    assert compatible(wider, node) and not compatible(node, wider)


# -- levels -------------------------------------------------------------------------------------
V1 = rec({"name": "a", "type": "int"})
V2 = rec({"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0})
V3 = rec({"name": "b", "type": "int", "default": 0})  # drops a (no default)


def _check(level: Level, new: Any, *previous: Any) -> list[str]:
    prev = [
        PreviousVersion(i + 1, parse_schema(json.dumps(p)).root) for i, p in enumerate(previous)
    ]
    return check_compatibility(level, parse_schema(json.dumps(new)).root, prev)


def test_levels_directions() -> None:
    # V3 reads V2 data (a ignored, b present): backward ok; V2 cannot read V3 data (a missing).
    assert not _check(Level.BACKWARD, V3, V1, V2)
    assert _check(Level.FORWARD, V3, V1, V2)
    assert _check(Level.FULL, V3, V1, V2)
    assert not _check(Level.NONE, V3, V1, V2)


def test_transitive_levels_check_every_version() -> None:
    v4 = rec({"name": "b", "type": "int", "default": 0}, {"name": "c", "type": "string"})
    v0 = rec({"name": "c", "type": "string"})
    assert not _check(Level.FORWARD, V2, v0, V1)  # latest only: V1 reads V2 fine
    messages = _check(Level.FORWARD_TRANSITIVE, V2, v0, V1)
    assert messages and "version 1" in messages[0]
    assert _check(Level.BACKWARD, v4, V1, V3)
    assert not _check(Level.NONE, v4, V1, V3)


def test_level_parsing() -> None:
    assert Level.parse("full_transitive") is Level.FULL_TRANSITIVE
    assert Level.parse("sideways") is None and Level.parse(3) is None


def optional(t: Any) -> Any:
    """``t`` as a union whose first branch is null (so a null default is valid)."""
    t = name_types(t, itertools.count(), prefix="N")
    if t == "null":
        return t
    if isinstance(t, list):
        return ["null", *[b for b in t if b != "null"]]
    return ["null", t]


# -- properties ---------------------------------------------------------------------------------
PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(avro_schemas())
def test_every_schema_is_fully_compatible_with_itself(schema: dict[str, Any]) -> None:
    root = parse_schema(json.dumps(schema)).root
    for level in Level:
        assert check_compatibility(level, root, [PreviousVersion(1, root)]) == []


@PROPS
@given(avro_schemas(), field_types())
def test_adding_a_field_with_default_is_backward_compatible(
    schema: dict[str, Any], new_type: Any
) -> None:
    new = copy.deepcopy(schema)
    new["fields"].append({"name": "added", "type": optional(new_type), "default": None})
    assert _check(Level.BACKWARD, new, schema) == []
    # And old readers simply skip it, so the change is FULL compatible.
    assert _check(Level.FULL, new, schema) == []


@PROPS
@given(avro_schemas(), field_types())
def test_adding_a_field_without_default_is_not_backward_compatible(
    schema: dict[str, Any], new_type: Any
) -> None:
    new = copy.deepcopy(schema)
    new["fields"].append({"name": "added", "type": name_types(new_type, itertools.count(), "N")})
    messages = _check(Level.BACKWARD, new, schema)
    assert messages and "'added'" in messages[0] and "READER_FIELD_MISSING_DEFAULT" in messages[0]
    assert _check(Level.FORWARD, new, schema) == []


@PROPS
@given(avro_schemas(min_fields=2), st.data())
def test_removing_a_field_without_default_is_not_forward_compatible(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(schema["fields"]) - 1))
    new = copy.deepcopy(schema)
    removed = new["fields"].pop(index)
    assert _check(Level.BACKWARD, new, schema) == []
    messages = _check(Level.FORWARD, new, schema)
    assert messages and f"'{removed['name']}'" in messages[0]


@PROPS
@given(avro_schemas(), st.data())
def test_compatible_verdicts_hold_for_real_data(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    """Soundness against fastavro: a reader judged compatible decodes the writer's data."""
    reader = copy.deepcopy(schema)
    index = data.draw(st.integers(0, len(reader["fields"]) - 1))
    mutation = data.draw(st.sampled_from(["retype", "drop", "add_default", "promote"]))
    field = reader["fields"][index]
    if mutation == "retype":
        field["type"] = name_types(data.draw(field_types()), itertools.count(), "M")
    elif mutation == "drop":
        reader["fields"].pop(index)
    elif mutation == "add_default":
        reader["fields"].append({"name": "extra", "type": "string", "default": "x"})
    else:
        promoted = {"int": "long", "long": "double", "float": "double", "string": "bytes"}
        field["type"] = promoted.get(field["type"], field["type"]) if isinstance(
            field["type"], str) else field["type"]
    if not compatible(reader, schema):
        return
    datum = data.draw(data_for(schema))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), datum)
    buf.seek(0)
    fastavro.schemaless_reader(buf, fastavro.parse_schema(schema), fastavro.parse_schema(reader))


@PROPS
@given(avro_schemas(), avro_schemas())
def test_full_is_backward_and_forward_and_transitive_includes_latest(
    older: dict[str, Any], newer: dict[str, Any]
) -> None:
    newer = copy.deepcopy(newer)
    newer["name"] = older["name"]  # same record name, so the field rules decide
    backward, forward = _check(Level.BACKWARD, newer, older), _check(Level.FORWARD, newer, older)
    assert bool(_check(Level.FULL, newer, older)) == bool(backward or forward)
    # With one earlier version the transitive levels say exactly what the plain ones say.
    for level, transitive in ((Level.BACKWARD, Level.BACKWARD_TRANSITIVE),
                              (Level.FORWARD, Level.FORWARD_TRANSITIVE),
                              (Level.FULL, Level.FULL_TRANSITIVE)):
        assert _reasons(level, newer, older) == _reasons(transitive, newer, older)
    # Transitive checks see at least the problems of the latest version.
    assert _reasons(Level.FULL, newer, newer, older) <= _reasons(
        Level.FULL_TRANSITIVE, newer, newer, older)


def _reasons(level: Level, new: Any, *previous: Any) -> set[str]:
    """The messages without the level's name (which differs between levels by design)."""
    return {m.rsplit(", compatibility", 1)[0] for m in _check(level, new, *previous)}


@pytest.mark.parametrize("writer", ["null", "boolean", "int", "long", "float", "double", "bytes",
                                    "string"])
@pytest.mark.parametrize("reader", ["null", "boolean", "int", "long", "float", "double", "bytes",
                                    "string"])
def test_primitive_resolution_table(writer: str, reader: str) -> None:
    """Exactly the specification's promotions, and nothing else, resolve between primitives."""
    allowed = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
               ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string")}
    assert compatible(reader, writer) == (writer == reader or (writer, reader) in allowed)


@PROPS
@given(st.lists(st.sampled_from(["A", "B", "C", "D", "E", "F"]), min_size=1, max_size=6,
                unique=True), st.data())
def test_enum_symbol_rules(symbols: list[str], data: st.DataObject) -> None:
    writer = {"type": "enum", "name": "E", "symbols": symbols}
    kept = data.draw(st.lists(st.sampled_from(symbols), min_size=1, unique=True))
    reader = {"type": "enum", "name": "E", "symbols": kept}
    assert compatible(reader, writer) == (set(symbols) <= set(kept))
    assert compatible({**reader, "default": kept[0]}, writer)  # a default absorbs the rest
