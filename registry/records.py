"""The records of the ``_schemas`` log: keys, values and their byte encoding.

The format follows the Confluent-compatible layout so that keys compact correctly: every logical
key is always serialized to the very same bytes (fixed attribute order, no spaces). A ``None``
value is a tombstone. ``ID_FLOOR`` is this registry's own record: the highest id ever handed out,
written before any tombstone so that ids stay unique after compaction drops deleted schemas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SCHEMA = "SCHEMA"
CONFIG = "CONFIG"
MODE = "MODE"
ID_FLOOR = "ID_FLOOR"
DELETE_SUBJECT = "DELETE_SUBJECT"
NOOP = "NOOP"


@dataclass(frozen=True, order=True)
class RecordKey:
    """Logical identity of a log record; compaction keeps the last value per key."""

    keytype: str
    subject: str | None = None
    version: int | None = None

    def encode(self) -> bytes:
        if self.keytype == SCHEMA:
            doc: dict[str, Any] = {
                "keytype": SCHEMA, "subject": self.subject, "version": self.version, "magic": 1
            }
        else:
            doc = {"keytype": self.keytype, "subject": self.subject, "magic": 0}
        return _dump(doc)


def schema_key(subject: str, version: int) -> RecordKey:
    return RecordKey(SCHEMA, subject, version)


def config_key(subject: str | None) -> RecordKey:
    return RecordKey(CONFIG, subject)


def mode_key(subject: str | None) -> RecordKey:
    return RecordKey(MODE, subject)


def id_floor_key() -> RecordKey:
    return RecordKey(ID_FLOOR)


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def encode_value(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else _dump(value)


class MalformedRecord(ValueError):
    """A record in the log that this registry cannot interpret (it is skipped, never fatal)."""


def decode(key: bytes | None, value: bytes | None) -> tuple[RecordKey, dict[str, Any] | None]:
    if key is None:
        raise MalformedRecord("record without key")
    try:
        k = json.loads(key)
        v = None if value is None else json.loads(value)
    except ValueError as exc:
        raise MalformedRecord(f"record is not JSON: {exc}") from exc
    if not isinstance(k, dict) or not isinstance(k.get("keytype"), str):
        raise MalformedRecord(f"record key has no keytype: {key!r:.200}")
    if v is not None and not isinstance(v, dict):
        raise MalformedRecord(f"record value is not an object: {value!r:.200}")
    subject = k.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise MalformedRecord(f"record key has an invalid subject: {key!r:.200}")
    version = k.get("version")
    if k["keytype"] == SCHEMA and (not isinstance(version, int) or subject is None):
        raise MalformedRecord(f"schema record key without subject/version: {key!r:.200}")
    return RecordKey(k["keytype"], subject, version if k["keytype"] == SCHEMA else None), v
