"""Request payloads: validation of schema submissions, version segments, config and mode bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidRequestBody, InvalidSchema, InvalidVersion
from registry.state import AVRO, Reference

MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class SchemaSubmission:
    schema: str
    schema_type: str = AVRO
    references: tuple[Reference, ...] = ()
    # Only honoured in IMPORT mode: keep the id and version the schema had elsewhere.
    id: int | None = None
    version: int | None = None


def schema_submission(body: Any) -> SchemaSubmission:
    if not isinstance(body, dict):
        raise InvalidRequestBody("the request body must be a JSON object")
    schema = body.get("schema")
    if schema is None or schema == "":
        raise InvalidSchema("Empty schema")
    if not isinstance(schema, str):
        raise InvalidSchema("'schema' must be a string holding the schema's JSON text")
    schema_type = body.get("schemaType") or AVRO
    if not isinstance(schema_type, str):
        raise InvalidSchema("'schemaType' must be a string")
    refs = []
    raw_refs = body.get("references") or []
    if not isinstance(raw_refs, list):
        raise InvalidSchema("'references' must be a list")
    for raw in raw_refs:
        if not isinstance(raw, dict):
            raise InvalidSchema("each reference must be an object with name, subject, version")
        name, subject, version = raw.get("name"), raw.get("subject"), raw.get("version")
        if not isinstance(name, str) or not isinstance(subject, str) or not _is_int(version):
            raise InvalidSchema("each reference needs a string name and subject and an int version")
        refs.append(Reference(name, subject, version))
    schema_id, version = body.get("id"), body.get("version")
    for label, value in (("id", schema_id), ("version", version)):
        if value is not None and (not _is_int(value) or not 1 <= value <= MAX_VERSION):
            raise InvalidRequestBody(f"'{label}' must be an integer between 1 and {MAX_VERSION}")
    return SchemaSubmission(schema, schema_type.upper(), tuple(refs), schema_id, version)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def field_of(body: Any, name: str) -> Any:
    """The value of ``name`` in a JSON object body, or a 400 if the body is not an object."""
    if not isinstance(body, dict):
        raise InvalidRequestBody("the request body must be a JSON object")
    return body.get(name)


LATEST = -1


def parse_version(spec: str) -> int:
    """A version path segment: 1..2^31-1, ``latest`` or ``-1`` (both mean LATEST)."""
    if spec == "latest":
        return LATEST
    try:
        value = int(spec)
    except ValueError:
        raise InvalidVersion(spec) from None
    if value == LATEST or 1 <= value <= MAX_VERSION:
        return value
    raise InvalidVersion(spec)
