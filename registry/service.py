"""The registry's operations with Confluent semantics, independent of HTTP.

Reads answer from the in-memory state. Writes run only on the elected writer, one at a time:
each first applies everything already in the log (another instance may have written last),
checks its preconditions against that state, appends its records and returns once they are read
back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from registry import records
from registry.compatibility import DEFAULT_LEVEL, Level, PreviousVersion, check_compatibility
from registry.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidMode,
    OperationNotPermitted,
    ReferenceExists,
    SchemaNotFound,
    StoreError,
    SubjectCompatibilityNotConfigured,
    SubjectModeNotConfigured,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from registry.records import RecordKey
from registry.requests import LATEST, SchemaSubmission
from registry.resolver import SchemaResolver
from registry.state import AVRO, Identity, RegistryState, VersionEntry, schema_record_value
from registry.store import KafkaStore

log = logging.getLogger(__name__)

READWRITE, READONLY, IMPORT = "READWRITE", "READONLY", "IMPORT"
MODES = (READWRITE, READONLY, IMPORT)

Write = list[tuple[RecordKey, dict[str, Any] | None]]


class RegistryService:
    def __init__(self, state: RegistryState, store: KafkaStore) -> None:
        self.state = state
        self.store = store
        self.resolver = SchemaResolver(state)
        self._write_lock = asyncio.Lock()

    # -- settings ------------------------------------------------------------------------------
    def compatibility(self, subject: str | None) -> Level:
        raw = self.state.configs.get(subject) if subject is not None else None
        raw = raw or self.state.configs.get(None)
        return Level.parse(raw) or DEFAULT_LEVEL

    def mode(self, subject: str | None) -> str:
        raw = self.state.modes.get(subject) if subject is not None else None
        return raw or self.state.modes.get(None) or READWRITE

    # -- reads ---------------------------------------------------------------------------------
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
            previous = self._previous(subject)
        else:
            entry = self.version_entry(subject, version)
            previous = [PreviousVersion(entry.version, self.resolver.by_id(entry.schema_id).root)]
            if level.transitive:
                level = Level(level.value.removesuffix("_TRANSITIVE"))
        return check_compatibility(level, parsed.root, previous)

    def _previous(self, subject: str) -> list[PreviousVersion]:
        return [
            PreviousVersion(v.version, self.resolver.by_id(v.schema_id).root)
            for v in self.state.versions(subject)
        ]

    # -- writes --------------------------------------------------------------------------------
    async def register(self, subject: str, sub: SchemaSubmission) -> int:
        parsed = self.resolver.parse(sub.schema_type, sub.schema, sub.references)
        identity: Identity = (sub.schema_type, parsed.normalized, sub.references)
        async with self._write_lock:
            await self.store.sync_to_end()
            mode = self.mode(subject)
            if mode == READONLY:
                raise OperationNotPermitted(f"Subject {subject} is in read-only mode")
            if sub.id is not None and mode != IMPORT:
                raise OperationNotPermitted(
                    f"Subject {subject} is not in import mode; a schema id cannot be given"
                )
            for entry in self.state.versions(subject):
                same = self.state.schemas[entry.schema_id].identity == identity
                if same and sub.id in (None, entry.schema_id):
                    return entry.schema_id
            if mode != IMPORT:
                messages = check_compatibility(
                    self.compatibility(subject), parsed.root, self._previous(subject)
                )
                if messages:
                    raise IncompatibleSchema(subject, messages)
            schema_id = self._choose_id(identity, sub.id)
            version = self._choose_version(subject, sub.version if mode == IMPORT else None)
            value = {
                "subject": subject, "version": version, "id": schema_id,
                "schema": parsed.normalized, "deleted": False,
            }
            if sub.schema_type != AVRO:
                value["schemaType"] = sub.schema_type
            if sub.references:
                value["references"] = [r.to_json() for r in sub.references]
            await self.store.write([(records.schema_key(subject, version), value)])
            written = self.state.subjects.get(subject, {}).get(version)
            if written is None or written.schema_id != schema_id:
                raise StoreError("the write lost a race with another writer; retry the request")
            log.info("registered %s version %s as schema id %s", subject, version, schema_id)
            return schema_id

    def _choose_id(self, identity: Identity, requested: int | None) -> int:
        existing = self.state.ids_by_identity.get(identity)
        if requested is None:
            return existing if existing is not None else self.state.max_id + 1
        holder = self.state.schemas.get(requested)
        if (holder is not None and holder.identity != identity) or (
            existing is not None and existing != requested
        ):
            raise OperationNotPermitted(
                f"Overwrite new schema with id {requested} is not permitted."
            )
        return requested

    def _choose_version(self, subject: str, requested: int | None) -> int:
        if requested is None:
            return self.state.next_version(subject)
        if requested in self.state.subjects.get(subject, {}):
            raise OperationNotPermitted(
                f"Version {requested} of subject {subject} already exists; it cannot be overwritten"
            )
        return requested

    async def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        async with self._write_lock:
            await self.store.sync_to_end()
            self._require_writable(subject)
            every = self.state.versions(subject, include_deleted=True)
            if not every:
                raise SubjectNotFound(subject)
            live = [v for v in every if not v.deleted]
            writes: Write
            if not permanent:
                if not live:
                    raise SubjectSoftDeleted(subject)
                self._refuse_if_referenced(live, include_deleted=False)
                writes = [self._soft_delete(v) for v in live]
                result = [v.version for v in live]
            else:
                if live:
                    raise SubjectNotSoftDeleted(subject)
                self._refuse_if_referenced(every, include_deleted=True)
                writes = [self._id_floor()]
                writes += [(records.schema_key(subject, v.version), None) for v in every]
                if subject in self.state.configs:
                    writes.append((records.config_key(subject), None))
                if subject in self.state.modes:
                    writes.append((records.mode_key(subject), None))
                result = [v.version for v in every]
            await self.store.write(writes)
            log.info("deleted %s versions %s%s", subject, result, " permanently" * permanent)
            return result

    async def delete_version(self, subject: str, version: int, permanent: bool) -> int:
        async with self._write_lock:
            await self.store.sync_to_end()
            self._require_writable(subject)
            # An explicit version is found even when soft-deleted (to answer 40406 rather than
            # 40402); "latest" means the latest live version unless deleting permanently.
            entry = self.version_entry(
                subject, version, deleted=permanent or version != LATEST
            )
            if not permanent:
                if entry.deleted:
                    raise VersionSoftDeleted(subject, entry.version)
                self._refuse_if_referenced([entry], include_deleted=False)
                await self.store.write([self._soft_delete(entry)])
            else:
                if not entry.deleted:
                    raise VersionNotSoftDeleted(subject, entry.version)
                self._refuse_if_referenced([entry], include_deleted=True)
                await self.store.write(
                    [self._id_floor(), (records.schema_key(subject, entry.version), None)]
                )
            return entry.version

    def _require_writable(self, subject: str) -> None:
        if self.mode(subject) == READONLY:
            raise OperationNotPermitted(f"Subject {subject} is in read-only mode")

    def _refuse_if_referenced(self, entries: list[VersionEntry], include_deleted: bool) -> None:
        for entry in entries:
            if self.state.referrers(entry.subject, entry.version, include_deleted):
                raise ReferenceExists(entry.subject, entry.version)

    def _soft_delete(self, entry: VersionEntry) -> tuple[RecordKey, dict[str, Any]]:
        schema = self.state.schemas[entry.schema_id]
        value = schema_record_value(entry.subject, entry.version, schema, deleted=True)
        return records.schema_key(entry.subject, entry.version), value

    def _id_floor(self) -> tuple[RecordKey, dict[str, Any]]:
        # Written before tombstones: once compaction drops the deleted schema, this record
        # still tells a replaying instance which ids were handed out.
        return records.id_floor_key(), {"max_id": self.state.max_id}

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

    async def set_config(self, subject: str | None, raw: Any) -> str:
        level = Level.parse(raw)
        if level is None:
            raise InvalidCompatibilityLevel(raw)
        async with self._write_lock:
            value = {"compatibilityLevel": level.value}
            await self.store.write([(records.config_key(subject), value)])
        return level.value

    async def delete_config(self, subject: str | None) -> str:
        async with self._write_lock:
            await self.store.sync_to_end()
            if (
                subject is not None
                and subject not in self.state.configs
                and not self.state.versions(subject, include_deleted=True)
            ):
                raise SubjectNotFound(subject)
            previous = self.get_config(subject, default_to_global=True)
            await self.store.write([(records.config_key(subject), None)])
            return previous

    def get_mode(self, subject: str | None, default_to_global: bool) -> str:
        if subject is None:
            return self.mode(None)
        configured = self.state.modes.get(subject)
        if configured is not None:
            return configured
        if default_to_global:
            return self.mode(None)
        raise SubjectModeNotConfigured(subject)

    async def set_mode(self, subject: str | None, raw: Any, force: bool) -> str:
        mode = raw.upper() if isinstance(raw, str) else raw
        if mode == "READONLY_OVERRIDE":
            mode = READONLY
        if mode not in MODES:
            raise InvalidMode(raw)
        async with self._write_lock:
            await self.store.sync_to_end()
            if mode == IMPORT and not force:
                has = self.state.versions(subject) if subject else self.state.subject_names()
                if has:
                    raise OperationNotPermitted(
                        "Cannot import since found existing subjects; set force=true to override"
                    )
            await self.store.write([(records.mode_key(subject), {"mode": mode})])
        return str(mode)

    async def delete_mode(self, subject: str | None) -> str:
        async with self._write_lock:
            await self.store.sync_to_end()
            previous = self.get_mode(subject, default_to_global=True)
            await self.store.write([(records.mode_key(subject), None)])
            return previous

    async def repair_conflicts(self) -> int:
        """Re-publish the winning value of keys that saw conflicting records (writer only)."""
        async with self._write_lock:
            keys = sorted(self.state.conflicts)
            if keys:
                await self.store.write([(k, self.state.current_value(k)) for k in keys])
            return len(keys)
