"""Where serde gets writer schemas and ids: the schema registry, or an in-process table.

The serde never talks HTTP itself; it asks a ``SchemaSource`` and caches the answer, so the
registry is consulted once per schema id (decode) or once per subject (encode) per process.
``RegistrySchemaSource`` wraps confluent-kafka's ``SchemaRegistryClient``; ``InMemorySchemaSource``
serves unit tests and the benchmark (it counts calls so tests can prove the caches hold).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol


class SchemaSourceError(Exception):
    """Base of everything a schema source raises."""


class SchemaNotFound(SchemaSourceError, LookupError):
    """The registry answered, and it does not know this id / subject / schema."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # "id" | "subject" | "schema"


class RegistryUnavailable(SchemaSourceError, ConnectionError):
    """The registry could not be reached (transient: retry, do not dead-letter)."""


class RegistryRejected(SchemaSourceError):
    """The registry refused a request, e.g. 409 for an incompatible schema."""

    def __init__(self, message: str, *, status: int, error_code: int) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SchemaSource(Protocol):
    def schema_by_id(self, schema_id: int) -> str:
        """Schema JSON text for a global id. Raises SchemaNotFound(kind="id")."""
        ...

    def register(self, subject: str, schema: str) -> int:
        """Register (idempotent) and return the id. Raises RegistryRejected on 409/422."""
        ...

    def lookup(self, subject: str, schema: str) -> int:
        """Id of ``schema`` under ``subject`` without registering (kind="subject"/"schema")."""
        ...


def canonical_text(schema: str | dict[str, Any]) -> str:
    """Compact JSON text of a schema, so equal schemas compare equal as strings."""
    obj = json.loads(schema) if isinstance(schema, str) else schema
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


@dataclass
class InMemorySchemaSource:
    """A registry in a dict, for unit tests and benchmarks. No compatibility checks."""

    schemas: dict[int, str] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    fetches: int = 0
    registrations: int = 0
    lookups: int = 0
    next_id: int = 1

    def schema_by_id(self, schema_id: int) -> str:
        self.fetches += 1
        try:
            return self.schemas[schema_id]
        except KeyError:
            raise SchemaNotFound(f"schema id {schema_id} not found", kind="id") from None

    def _id_of(self, schema: str) -> int | None:
        text = canonical_text(schema)
        for sid, known in self.schemas.items():
            if canonical_text(known) == text:
                return sid
        return None

    def register(self, subject: str, schema: str) -> int:
        self.registrations += 1
        sid = self._id_of(schema)
        if sid is None:
            sid = self.next_id
            self.next_id += 1
            self.schemas[sid] = schema
        versions = self.subjects.setdefault(subject, [])
        if sid not in versions:
            versions.append(sid)
        return sid

    def lookup(self, subject: str, schema: str) -> int:
        self.lookups += 1
        if subject not in self.subjects:
            raise SchemaNotFound(f"subject {subject!r} not found", kind="subject")
        sid = self._id_of(schema)
        if sid is None or sid not in self.subjects[subject]:
            raise SchemaNotFound(f"schema not registered under {subject!r}", kind="schema")
        return sid


class RegistrySchemaSource:
    """A Confluent-compatible registry over HTTP (confluent-kafka's client, which caches too)."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 timeout_s: float = 5.0, max_retries: int = 1) -> None:
        with warnings.catch_warnings():
            # authlib (pulled in by the client) warns about its httpx module on import; the
            # warning is theirs to fix and would otherwise print in every worker and CLI run.
            # Its own import puts an "always" filter for its warnings first in line, so it is
            # imported before the "ignore" goes in front of that.
            with contextlib.suppress(ImportError):
                import authlib.deprecate  # noqa: F401
            warnings.simplefilter("ignore", DeprecationWarning)
            from confluent_kafka.schema_registry import SchemaRegistryClient

        conf: dict[str, Any] = {"url": url, "timeout": timeout_s, "max.retries": max_retries,
                                "retries.wait.ms": 200}
        if user is not None:
            conf["basic.auth.user.info"] = f"{user}:{password or ''}"
        self.url = url
        self.client = SchemaRegistryClient(conf)

    @classmethod
    def from_settings(cls, settings: Any, url: str | None = None) -> RegistrySchemaSource:
        password = settings.registry_password
        return cls(url or settings.registry_url, user=settings.registry_user,
                   password=password.get_secret_value() if password is not None else None)

    def _call(self, what: str, fn: Any, *args: Any, kind: str = "id") -> Any:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return fn(*args)
        except SchemaRegistryError as exc:
            status, code, msg = exc.http_status_code, exc.error_code, exc.error_message
            if status == 404:
                # 40401 subject, 40403 schema/id; the caller knows which it asked for.
                found_kind = "subject" if code == 40401 else kind
                raise SchemaNotFound(f"{what}: {msg} (error {code})", kind=found_kind) from exc
            if status in (409, 422):
                raise RegistryRejected(f"{what}: {msg} (HTTP {status}, error {code})",
                                       status=status, error_code=code) from exc
            raise RegistryUnavailable(f"{what}: registry at {self.url} answered HTTP {status}: "
                                      f"{msg}") from exc
        except (OSError, ConnectionError) as exc:
            raise RegistryUnavailable(f"{what}: registry at {self.url} unreachable: {exc}") from exc
        except Exception as exc:  # httpx transport errors do not subclass OSError
            if type(exc).__module__.startswith("httpx"):
                raise RegistryUnavailable(
                    f"{what}: registry at {self.url} unreachable: {exc!r}") from exc
            raise

    def schema_by_id(self, schema_id: int) -> str:
        schema = self._call(f"schema id {schema_id}", self.client.get_schema, schema_id)
        return str(schema.schema_str)

    def register(self, subject: str, schema: str) -> int:
        from confluent_kafka.schema_registry import Schema

        return int(self._call(f"register {subject!r}", self.client.register_schema, subject,
                              Schema(schema, "AVRO"), kind="schema"))

    def lookup(self, subject: str, schema: str) -> int:
        from confluent_kafka.schema_registry import Schema

        registered = self._call(f"look up {subject!r}", self.client.lookup_schema, subject,
                                Schema(schema, "AVRO"), kind="schema")
        return int(registered.schema_id)
