"""The registry's write operations (Confluent-compatible semantics), independent of HTTP.

Reads are inherited from ``RegistryQueries``. Writes run only on the elected writer, one at a
time: each first applies everything already in the log (another instance may have written
last), checks its preconditions against that state, appends its records and returns once they
are read back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from registry import records
from registry.compatibility import Level, check_compatibility
from registry.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidMode,
    OperationNotPermitted,
    ReferenceExists,
    StoreError,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from registry.payloads import LATEST, SchemaSubmission
from registry.queries import IMPORT, MODES, READONLY, RegistryQueries
from registry.records import RecordKey
from registry.state import AVRO, Identity, RegistryState, VersionEntry, schema_record_value
from registry.store import KafkaStore

log = logging.getLogger(__name__)

Write = list[tuple[RecordKey, dict[str, Any] | None]]


class RegistryService(RegistryQueries):
    def __init__(self, state: RegistryState, store: KafkaStore) -> None:
        super().__init__(state)
        self.store = store
        self._write_lock = asyncio.Lock()

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
                    self.compatibility(subject), parsed.root, self.previous(subject)
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
