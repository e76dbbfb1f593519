"""The TypedDicts in tables.records must mirror the .avsc files exactly."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from tables import records, schema_files

from .samples import SAMPLES

PRIMITIVES: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "boolean": bool,
    "double": float,
    "float": float,
    "bytes": bytes,
}


def _named_records(schema: Any, found: dict[str, dict[str, Any]]) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            found[schema["name"]] = schema
        for value in schema.values():
            _named_records(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _named_records(value, found)


def _all_records() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in schema_files.list_schemas():
        _named_records(schema_files.load_schema(name), found)
    return found


AVSC_RECORDS = _all_records()


def _split_null(avro_type: Any) -> tuple[Any, bool]:
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        assert len(rest) == 1, f"only [null, X] unions are used: {avro_type}"
        return rest[0], "null" in avro_type
    return avro_type, False


def _split_none(hint: Any) -> tuple[Any, bool]:
    if get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in get_args(hint) if a is not type(None)]
        assert len(rest) == 1
        return rest[0], len(rest) < len(get_args(hint))
    return hint, False


def _check_type(where: str, avro_type: Any, hint: Any) -> None:
    if isinstance(avro_type, str) and avro_type in PRIMITIVES:
        assert hint is PRIMITIVES[avro_type], f"{where}: {hint} != {avro_type}"
        return
    if isinstance(avro_type, str):  # reference to a named type defined earlier
        avro_type = AVSC_RECORDS[avro_type]
    kind = avro_type["type"]
    if kind in PRIMITIVES:  # e.g. {"type": "long", "logicalType": "timestamp-millis"}
        assert hint is PRIMITIVES[kind], f"{where}: {hint} != {kind}"
    elif kind == "enum":
        assert get_origin(hint) is Literal, f"{where}: enums are str Literals"
        assert list(get_args(hint)) == avro_type["symbols"], f"{where}: enum symbols drifted"
    elif kind == "array":
        assert get_origin(hint) is list, where
        _check_type(f"{where}[]", avro_type["items"], get_args(hint)[0])
    elif kind == "map":
        assert get_origin(hint) is dict and get_args(hint)[0] is str, where
        _check_type(f"{where}{{}}", avro_type["values"], get_args(hint)[1])
    elif kind == "record":
        assert hint is records.RECORD_TYPES[avro_type["name"]], where
    else:  # pragma: no cover - a new Avro construct needs a rule here
        pytest.fail(f"{where}: unsupported Avro type {avro_type}")


def test_every_avro_record_has_a_typeddict_and_vice_versa() -> None:
    assert set(records.RECORD_TYPES) == set(AVSC_RECORDS)
    for name, td in records.RECORD_TYPES.items():
        assert td.__name__ == name


@pytest.mark.parametrize("name", sorted(AVSC_RECORDS))
def test_typeddict_matches_avsc(name: str) -> None:
    td = records.RECORD_TYPES[name]
    hints = get_type_hints(td)
    fields = AVSC_RECORDS[name]["fields"]
    assert list(hints) == [f["name"] for f in fields], "field names or order drifted"
    for field in fields:
        where = f"{name}.{field['name']}"
        avro_type, nullable = _split_null(field["type"])
        hint, optional = _split_none(hints[field["name"]])
        assert nullable == optional, f"{where}: nullability drifted"
        _check_type(where, avro_type, hint)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_have_exactly_the_typeddict_keys(name: str) -> None:
    assert set(SAMPLES[name]) == set(get_type_hints(records.RECORD_TYPES[name]))


def test_nullable_fields_default_to_null() -> None:
    # Optional fields default to null so producers and readers can evolve independently.
    for name, record in AVSC_RECORDS.items():
        for field in record["fields"]:
            _, nullable = _split_null(field["type"])
            if nullable:
                assert field.get("default", "missing") is None, f"{name}.{field['name']}"
