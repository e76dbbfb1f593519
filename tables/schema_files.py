"""Where the Avro contracts live and how to read them (standard library only).

The ``schemas/*.avsc`` files are the single source of truth for every record the product
reads or writes; this module only locates and loads them so that serde, registry and tests
all see the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SCHEMAS_DIR_ENV = "FSTREAMS_SCHEMAS_DIR"
NAMESPACE = "fulfillment.v1"

# Input topic -> record name of its values. Every input topic is keyed by order_id.
INPUT_TOPIC_RECORDS: dict[str, str] = {
    "orders": "OrderEvent",
    "shipments": "ShipmentEvent",
    "returns": "ReturnEvent",
    "settlements": "SettlementEvent",
}

# Input topic -> the event_kind the per-order fold (tables.fulfillment.apply) expects.
INPUT_TOPIC_KINDS: dict[str, str] = {
    "orders": "order",
    "shipments": "shipment",
    "returns": "return",
    "settlements": "settlement",
}

INPUT_RECORDS: tuple[str, ...] = tuple(INPUT_TOPIC_RECORDS.values())
DERIVED_RECORDS: tuple[str, ...] = (
    "FulfillmentState",
    "ReconciliationMismatch",
    "SlaAlert",
    "WindowedMetric",
    "DeadLetter",
)


def schemas_dir() -> Path:
    """The schemas directory: ``$FSTREAMS_SCHEMAS_DIR`` or ``<repo root>/schemas``."""
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    # The repo root is the parent of the ``tables`` package.
    return Path(__file__).resolve().parent.parent / "schemas"


def schema_path(record_name: str) -> Path:
    return schemas_dir() / f"{record_name}.avsc"


def list_schemas() -> list[str]:
    """Record names that have an .avsc file, sorted."""
    return sorted(p.stem for p in schemas_dir().glob("*.avsc"))


def load_schema_text(record_name: str) -> str:
    """The .avsc exactly as stored (what gets registered with a schema registry)."""
    path = schema_path(record_name)
    if not path.is_file():
        raise KeyError(f"no schema {record_name!r} in {path.parent}")
    return path.read_text(encoding="utf-8")


def load_schema(record_name: str) -> dict[str, Any]:
    """The .avsc as a fresh dict (callers may mutate it; fastavro's parse_schema annotates)."""
    schema: dict[str, Any] = json.loads(load_schema_text(record_name))
    return schema


def load_all() -> dict[str, dict[str, Any]]:
    """Every schema by record name."""
    return {name: load_schema(name) for name in list_schemas()}


def record_for_topic(topic: str) -> str:
    """Record name carried by an input topic (``orders`` -> ``OrderEvent``)."""
    try:
        return INPUT_TOPIC_RECORDS[topic]
    except KeyError:
        raise KeyError(f"unknown input topic {topic!r}") from None


def load_topic_schema(topic: str) -> dict[str, Any]:
    return load_schema(record_for_topic(topic))


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` annotations.

    Our serde decodes timestamps as plain ``int`` epoch millis (what the pure domain uses), so
    readers parse the schema with logical types removed; the wire format is unchanged.
    """
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema
