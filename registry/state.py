"""The in-memory registry state, rebuilt by applying the ``_schemas`` log in order.

``RegistryState.apply`` is deterministic: every instance that replays the same log ends with the
same state. It refuses records that would bind one id to two schemas, one schema to two ids, or
one subject version to two ids (possible only if two writers raced); such a record is reported
as a conflict so that the elected writer can re-publish the winning value for that key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from registry import records
from registry.records import RecordKey

log = logging.getLogger(__name__)

AVRO = "AVRO"


@dataclass(frozen=True, order=True)
class Reference:
    """A named type defined by another subject's version."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


Identity = tuple[str, str, tuple[Reference, ...]]


@dataclass(eq=False)
class SchemaEntry:
    """One global schema id and the schema text it names."""

    id: int
    schema_type: str
    text: str
    references: tuple[Reference, ...]
    # Subject versions (soft-deleted ones included) that use this id.
    users: set[tuple[str, int]] = field(default_factory=set)
    # Response body of GET /schemas/ids/{id}, built once: the hot read path only copies bytes.
    id_response: bytes = b""

    def __post_init__(self) -> None:
        body: dict[str, Any] = {"schema": self.text}
        if self.schema_type != AVRO:
            body["schemaType"] = self.schema_type
        if self.references:
            body["references"] = [r.to_json() for r in self.references]
        self.id_response = json.dumps(body, separators=(",", ":")).encode()

    @property
    def identity(self) -> Identity:
        return (self.schema_type, self.text, self.references)


@dataclass
class VersionEntry:
    subject: str
    version: int
    schema_id: int
    deleted: bool = False


class Outcome(Enum):
    APPLIED = "applied"
    CONFLICT = "conflict"
    IGNORED = "ignored"


class RegistryState:
    def __init__(self) -> None:
        self.schemas: dict[int, SchemaEntry] = {}
        self.ids_by_identity: dict[Identity, int] = {}
        self.subjects: dict[str, dict[int, VersionEntry]] = {}
        self.configs: dict[str | None, str] = {}
        self.modes: dict[str | None, str] = {}
        # (subject, version) -> ids of schemas whose references name it.
        self.referenced_by: dict[tuple[str, int], set[int]] = {}
        self.max_id = 0
        self.conflicts: set[RecordKey] = set()

    # -- applying log records ------------------------------------------------------------------
    def apply(self, key: RecordKey, value: dict[str, Any] | None) -> Outcome:
        kt = key.keytype
        if kt == records.SCHEMA:
            return self._apply_schema(key, value)
        if kt == records.CONFIG:
            return self._apply_setting(self.configs, key.subject, value, "compatibilityLevel")
        if kt == records.MODE:
            return self._apply_setting(self.modes, key.subject, value, "mode")
        if kt == records.ID_FLOOR:
            if value is not None and isinstance(value.get("max_id"), int):
                self.max_id = max(self.max_id, value["max_id"])
            return Outcome.APPLIED
        if kt == records.DELETE_SUBJECT and value is not None and key.subject:
            upto = value.get("version")
            for entry in self.subjects.get(key.subject, {}).values():
                if isinstance(upto, int) and entry.version <= upto:
                    entry.deleted = True
            return Outcome.APPLIED
        return Outcome.IGNORED

    @staticmethod
    def _apply_setting(
        table: dict[str | None, str], subject: str | None, value: dict[str, Any] | None, attr: str
    ) -> Outcome:
        if value is None:
            table.pop(subject, None)
            return Outcome.APPLIED
        setting = value.get(attr)
        if not isinstance(setting, str):
            return Outcome.IGNORED
        table[subject] = setting
        return Outcome.APPLIED

    def _apply_schema(self, key: RecordKey, value: dict[str, Any] | None) -> Outcome:
        subject, version = key.subject, key.version
        assert subject is not None and version is not None
        if value is None:
            self._remove_version(subject, version)
            return Outcome.APPLIED
        parsed = _schema_value(value)
        if parsed is None:
            log.warning("skipping malformed schema record for %s/%s", subject, version)
            return Outcome.IGNORED
        schema_id, schema_type, text, refs, deleted = parsed
        self.max_id = max(self.max_id, schema_id)
        identity: Identity = (schema_type, text, refs)
        current = self.subjects.get(subject, {}).get(version)
        by_id = self.schemas.get(schema_id)
        by_identity = self.ids_by_identity.get(identity)
        if (
            (current is not None and current.schema_id != schema_id)
            or (by_id is not None and by_id.identity != identity)
            or (by_identity is not None and by_identity != schema_id)
        ):
            log.warning("conflicting record for %s version %s (id %s) refused",
                        subject, version, schema_id)
            self.conflicts.add(key)
            return Outcome.CONFLICT
        if by_id is None:
            by_id = SchemaEntry(schema_id, schema_type, text, refs)
            self.schemas[schema_id] = by_id
            self.ids_by_identity[identity] = schema_id
            for ref in refs:
                self.referenced_by.setdefault((ref.subject, ref.version), set()).add(schema_id)
        by_id.users.add((subject, version))
        if current is None:
            self.subjects.setdefault(subject, {})[version] = VersionEntry(
                subject, version, schema_id, deleted
            )
        else:
            current.deleted = deleted
        self.conflicts.discard(key)
        return Outcome.APPLIED

    def _remove_version(self, subject: str, version: int) -> None:
        versions = self.subjects.get(subject)
        entry = versions.pop(version, None) if versions else None
        self.conflicts.discard(records.schema_key(subject, version))
        if entry is None:
            return
        if not versions:
            del self.subjects[subject]
        schema = self.schemas.get(entry.schema_id)
        if schema is None:
            return
        schema.users.discard((subject, version))
        if not schema.users:
            del self.schemas[schema.id]
            self.ids_by_identity.pop(schema.identity, None)
            for ref in schema.references:
                holders = self.referenced_by.get((ref.subject, ref.version))
                if holders is not None:
                    holders.discard(schema.id)
                    if not holders:
                        del self.referenced_by[(ref.subject, ref.version)]

    # -- what the log should say for a key (used to repair conflicts) -------------------------
    def current_value(self, key: RecordKey) -> dict[str, Any] | None:
        if key.keytype != records.SCHEMA or key.subject is None or key.version is None:
            return None
        entry = self.subjects.get(key.subject, {}).get(key.version)
        return None if entry is None else self.schema_value(entry)

    def schema_value(self, entry: VersionEntry) -> dict[str, Any]:
        schema = self.schemas[entry.schema_id]
        return schema_record_value(entry.subject, entry.version, schema, entry.deleted)

    # -- queries -------------------------------------------------------------------------------
    def versions(self, subject: str, include_deleted: bool = False) -> list[VersionEntry]:
        entries = self.subjects.get(subject, {})
        return [entries[v] for v in sorted(entries) if include_deleted or not entries[v].deleted]

    def subject_names(self, include_deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, include_deleted))

    def next_version(self, subject: str) -> int:
        return max(self.subjects.get(subject, {}) or [0]) + 1

    def referrers(self, subject: str, version: int, include_deleted: bool) -> list[int]:
        """Ids of schemas referencing ``subject``/``version`` that some (live) version uses."""
        ids = []
        for schema_id in sorted(self.referenced_by.get((subject, version), ())):
            schema = self.schemas[schema_id]
            if include_deleted or any(
                not self.subjects[s][v].deleted for s, v in schema.users
            ):
                ids.append(schema_id)
        return ids

    def iter_schema_versions(self) -> Iterator[VersionEntry]:
        for versions in self.subjects.values():
            yield from versions.values()


def schema_record_value(
    subject: str, version: int, schema: SchemaEntry, deleted: bool
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "subject": subject, "version": version, "id": schema.id,
        "schema": schema.text, "deleted": deleted,
    }
    if schema.schema_type != AVRO:
        value["schemaType"] = schema.schema_type
    if schema.references:
        value["references"] = [r.to_json() for r in schema.references]
    return value


def _schema_value(
    value: dict[str, Any],
) -> tuple[int, str, str, tuple[Reference, ...], bool] | None:
    schema_id, text = value.get("id"), value.get("schema")
    if not isinstance(schema_id, int) or isinstance(schema_id, bool) or schema_id < 0:
        return None
    if not isinstance(text, str):
        return None
    schema_type = value.get("schemaType") or AVRO
    refs = []
    for raw in value.get("references") or []:
        try:
            refs.append(Reference(str(raw["name"]), str(raw["subject"]), int(raw["version"])))
        except (KeyError, TypeError, ValueError):
            return None
    return schema_id, str(schema_type), text, tuple(refs), bool(value.get("deleted", False))
