"""Shared test data for the serde tests: one sample per schema, in-memory codecs."""

from __future__ import annotations

import copy
import json
from typing import Any

from streams.schema_source import InMemorySchemaSource
from streams.serde import WireDecoder, WireEncoder
from tables.schema_files import load_schema, load_schema_text

try:  # tests/ is a package in some checkouts (tests.unit) and a rootdir in others (unit)
    from tests.unit.samples import SAMPLES
except ImportError:
    from unit.samples import SAMPLES  # type: ignore[no-redef]

__all__ = ["SAMPLES", "codec_pair", "order_v2_text", "sample"]


def sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(SAMPLES[name])


def codec_pair(name: str, source: InMemorySchemaSource | None = None,
               subject: str | None = None) -> tuple[WireEncoder, WireDecoder]:
    source = source or InMemorySchemaSource()
    enc = WireEncoder(source, subject or f"t-{name}-value", load_schema_text(name))
    return enc, WireDecoder.for_record(source, name)


def order_v2_text(compatible: bool = True) -> str:
    """OrderEvent v2: adds gift_note (optional with a default) or, incompatibly, without one."""
    schema = load_schema("OrderEvent")
    field: dict[str, Any] = {"name": "gift_note", "type": ["null", "string"], "default": None}
    if not compatible:
        field = {"name": "gift_note", "type": "string"}
    schema["fields"].append(field)
    return json.dumps(schema)
