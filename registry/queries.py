"""Read-only registry queries (Confluent-compatible semantics), answered from memory."""

from __future__ import annotations

from typing import Any

from registry.compatibility import DEFAULT_LEVEL, Level, PreviousVersion, check_compatibility
from registry.errors import (
    SchemaNotFound,
    SubjectCompatibilityNotConfigured,
    SubjectModeNotConfigured,
    SubjectNotFound,
    VersionNotFound,
)
from registry.payloads import LATEST, SchemaSubmission
from registry.resolver import SchemaResolver
from registry.state import AVRO, Identity, RegistryState, VersionEntry

READWRITE, READONLY, IMPORT = "READWRITE", "READONLY", "IMPORT"
MODES = (READWRITE, READONLY, IMPORT)


class RegistryQueries:
    def __init__(self, state: RegistryState) -> None:
        self.state = state
        self.resolver = SchemaResolver(state)

    def compatibility(self, subject: str | None) -> Level:
        raw = self.state.configs.get(subject) if subject is not None else None
        raw = raw or self.state.configs.get(None)
        return Level.parse(raw) or DEFAULT_LEVEL

    def mode(self, subject: str | None) -> str:
        raw = self.state.modes.get(subject) if subject is not None else None
        return raw or self.state.modes.get(None) or READWRITE

    # -- schemas and subjects ------------------------------------------------------------------
    def schema_response(self, schema_id: int) -> bytes:
        # ``?subject=`` selects a schema context; this registry has only the default context,
        # so the parameter is accepted and needs no lookup.
        entry = self.state.schemas.get(schema_id)
        if entry is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return entry.id_response

    def schema_text(self, schema_id: int) -> str:
        entry = self.state.schemas.get(schema_id)
        if entry is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return entry.text

    def schema_versions(self, schema_id: int, deleted: bool = False) -> list[dict[str, Any]]:
        entry = self.state.schemas.get(schema_id)
        if entry is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        pairs = sorted(entry.users)
        return [
            {"subject": s, "version": v}
            for s, v in pairs
            if deleted or not self.state.subjects[s][v].deleted
        ]

    def subjects(self, deleted: bool = False, prefix: str = "") -> list[str]:
        return [s for s in self.state.subject_names(deleted) if s.startswith(prefix)]

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        found = self.state.versions(subject, deleted)
        if not found:
            raise SubjectNotFound(subject)
        return [v.version for v in found]

    def version_entry(self, subject: str, version: int, deleted: bool = False) -> VersionEntry:
        candidates = self.state.versions(subject, include_deleted=deleted)
        if not candidates:
            raise SubjectNotFound(subject)
        if version == LATEST:
            return candidates[-1]
        entry = self.state.subjects[subject].get(version)
        if entry is None or (entry.deleted and not deleted):
            raise VersionNotFound(subject, version)
        return entry

    def version_response(self, entry: VersionEntry) -> dict[str, Any]:
        schema = self.state.schemas[entry.schema_id]
        body: dict[str, Any] = {
            "subject": entry.subject, "version": entry.version, "id": schema.id,
            "schema": schema.text,
        }
        if schema.schema_type != AVRO:
            body["schemaType"] = schema.schema_type
        if schema.references:
            body["references"] = [r.to_json() for r in schema.references]
        return body

    def referenced_by(self, subject: str, version: int) -> list[int]:
        entry = self.version_entry(subject, version)
        return self.state.referrers(subject, entry.version, include_deleted=False)

    def lookup(self, subject: str, sub: SchemaSubmission, deleted: bool) -> dict[str, Any]:
        if not self.state.versions(subject, include_deleted=deleted):
            raise SubjectNotFound(subject)
        parsed = self.resolver.parse(sub.schema_type, sub.schema, sub.references)
        identity: Identity = (sub.schema_type, parsed.normalized, sub.references)
        for entry in reversed(self.state.versions(subject, include_deleted=deleted)):
            if self.state.schemas[entry.schema_id].identity == identity:
                return self.version_response(entry)
        raise SchemaNotFound()

    def check(
        self, subject: str, version: int | None, sub: SchemaSubmission
    ) -> list[str]:
        """Compatibility messages for ``sub`` against one version or (None) per the level."""
        parsed = self.resolver.parse(sub.schema_type, sub.schema, sub.references)
        level = self.compatibility(subject)
        if version is None:
            previous = self.previous(subject)
        else:
            entry = self.version_entry(subject, version)
            previous = [PreviousVersion(entry.version, self.resolver.by_id(entry.schema_id).root)]
            if level.transitive:
                level = Level(level.value.removesuffix("_TRANSITIVE"))
        return check_compatibility(level, parsed.root, previous)

    def previous(self, subject: str) -> list[PreviousVersion]:
        return [
            PreviousVersion(v.version, self.resolver.by_id(v.schema_id).root)
            for v in self.state.versions(subject)
        ]

    # -- config and mode -----------------------------------------------------------------------
    def get_config(self, subject: str | None, default_to_global: bool) -> str:
        if subject is None:
            return self.compatibility(None).value
        configured = self.state.configs.get(subject)
        if configured is not None:
            return configured
        if default_to_global:
            return self.compatibility(None).value
        raise SubjectCompatibilityNotConfigured(subject)

    def get_mode(self, subject: str | None, default_to_global: bool) -> str:
        if subject is None:
            return self.mode(None)
        configured = self.state.modes.get(subject)
        if configured is not None:
            return configured
        if default_to_global:
            return self.mode(None)
        raise SubjectModeNotConfigured(subject)
