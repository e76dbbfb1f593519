"""RecordInvalid names the field path, the expected Avro type and the bad value."""

from __future__ import annotations

from typing import Any

import pytest

from streams.validation import (
    RecordInvalid,
    RecordValidator,
    parse_timestamp_millis,
    validate,
    validator_for,
)
from tables.schema_files import list_schemas

from .helpers import SAMPLES, sample


def _error(name: str, record: dict[str, Any], coerce: bool = True) -> RecordInvalid:
    with pytest.raises(RecordInvalid) as err:
        validate(record, name, coerce=coerce)
    return err.value


@pytest.mark.parametrize("name", list_schemas())
def test_samples_are_valid(name: str) -> None:
    assert validate(sample(name), name) == SAMPLES[name]
    assert validate(sample(name), name, coerce=True) == SAMPLES[name]


def test_nested_array_field_path() -> None:
    rec = sample("OrderEvent")
    rec["lines"] = [dict(rec["lines"][0], line_id=f"l{i}") for i in range(3)]
    rec["lines"][2]["quantity"] = "2"
    err = _error("OrderEvent", rec)
    assert err.path == "lines[2].quantity"
    assert str(err) == "lines[2].quantity: expected int (32-bit), got '2'"


def test_enum_lists_symbols() -> None:
    err = _error("ShipmentEvent", {**sample("ShipmentEvent"), "status": "lost"})
    assert err.path == "status" and "enum ShipmentStatus" in str(err)
    assert "delivered" in str(err) and "'lost'" in str(err)


def test_money_must_be_int_minor_units() -> None:
    rec = sample("OrderEvent")
    rec["lines"][0]["unit_price"] = 12.5
    assert str(_error("OrderEvent", rec)) == \
        "lines[0].unit_price: expected long (64-bit int), got 12.5"


def test_nullable_field_message_mentions_null() -> None:
    err = _error("OrderEvent", {**sample("OrderEvent"), "customer_ref": 7})
    assert str(err) == "customer_ref: expected null or string, got 7"


def test_nested_record_in_union() -> None:
    rec = sample("OrderEvent")
    rec["totals"] = {**rec["totals"], "tax": None}
    assert _error("OrderEvent", rec).path == "totals.tax"


def test_missing_required_field() -> None:
    rec = sample("OrderEvent")
    del rec["order_id"]
    assert str(_error("OrderEvent", rec)) == \
        "order_id: required field of OrderEvent is missing (expected string)"


def test_unknown_field_is_rejected() -> None:
    err = _error("ShipmentEvent", {**sample("ShipmentEvent"), "tracking_numbr": "1Z"})
    assert err.path == "tracking_numbr" and "unknown field" in str(err)


def test_bool_is_not_an_int_and_int_range() -> None:
    rec = sample("ShipmentEvent")
    rec["lines"][0]["quantity"] = True
    assert _error("ShipmentEvent", rec).path == "lines[0].quantity"
    rec["lines"][0]["quantity"] = 2**31
    assert "out of range" in str(_error("ShipmentEvent", rec))


def test_iso_timestamps_are_converted_when_coercing() -> None:
    rec = {**sample("OrderEvent"), "event_time": "2025-11-23T12:13:20Z",
           "promised_ship_by": "2025-11-24T13:13:20+01:00"}
    out = validate(rec, "OrderEvent", coerce=True)
    assert out["event_time"] == 1_763_900_000_000
    assert out["promised_ship_by"] == 1_763_900_000_000 + 86_400_000
    # without coercion (SDK records) a string is an error
    assert _error("OrderEvent", rec, coerce=False).path == "event_time"


def test_naive_or_garbage_timestamps_are_rejected() -> None:
    err = _error("OrderEvent", {**sample("OrderEvent"), "event_time": "2025-11-23T12:13:20"})
    assert "no timezone" in str(err)
    err = _error("OrderEvent", {**sample("OrderEvent"), "event_time": "yesterday"})
    assert "not an ISO-8601 timestamp" in str(err)
    assert parse_timestamp_millis("1970-01-01T00:00:00.001+00:00") == 1


def test_coerce_fills_defaults_and_copies() -> None:
    rec = {k: v for k, v in sample("ShipmentEvent").items()
           if k not in ("warehouse", "carrier", "estimated_delivery_at")}
    out = validator_for("ShipmentEvent", coerce=True).validate(rec)
    assert out["warehouse"] is None and out["estimated_delivery_at"] is None
    assert out is not rec and "warehouse" not in rec


def test_bytes_and_maps() -> None:
    dl = sample("DeadLetter")
    dl["headers"] = [{"key": "h", "value": "not-bytes"}]
    assert _error("DeadLetter", dl, coerce=False).path == "headers[0].value"
    alert = sample("SlaAlert")
    alert["labels"] = {"rule": 5}
    assert _error("SlaAlert", alert).path == "labels['rule']"


def test_validator_from_schema_dict() -> None:
    v = RecordValidator({"type": "record", "name": "R", "fields": [
        {"name": "x", "type": ["null", "int", "string"]}]})
    assert v.validate({"x": "a"}) == {"x": "a"}
    with pytest.raises(RecordInvalid, match="x: expected null or int"):
        v.validate({"x": 1.5})
