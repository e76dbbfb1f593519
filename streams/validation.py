"""Validate records against their Avro schema before they are sent, with useful messages.

fastavro's validator says *that* a record is invalid; producers need *where*: ``RecordInvalid``
names the field path (``lines[2].quantity``), the expected Avro type and the bad value. A schema is
compiled once into nested checker closures. With ``coerce=True`` (JSON input) timestamp-millis
fields also accept ISO-8601 strings, missing fields get their defaults, and a normalised copy is
returned; without it the record is checked and returned as is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from tables.schema_files import load_schema_text

Checker = Callable[[Any, str], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()  # RecordInvalid.value of a required field that is absent


class RecordInvalid(ValueError):
    """A record does not match its schema; ``path``, ``expected`` and ``value`` say how."""

    stage = "validate"

    def __init__(self, path: str, expected: str, value: Any, reason: str | None = None) -> None:
        self.path = path or "<record>"
        self.expected = expected
        self.value = value
        self.reason = reason
        super().__init__(self._render())

    def _render(self) -> str:
        if self.value is MISSING:
            return f"{self.path}: {self.reason} (expected {self.expected})"
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        text = f"{self.path}: expected {self.expected}, got {shown}"
        if self.value is not None and not isinstance(self.value, str | int | float | bool | bytes):
            text += f" ({type(self.value).__name__})"
        return f"{text}: {self.reason}" if self.reason else text

    def widen(self, expected: str) -> RecordInvalid:
        return RecordInvalid(self.path, expected, self.value, self.reason)


def parse_timestamp_millis(value: Any, path: str = "") -> int:
    """Epoch millis from an int or an ISO-8601 string with a timezone ('Z' or an offset)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    expected = "timestamp-millis (int epoch millis or ISO-8601 string)"
    if not isinstance(value, str):
        raise RecordInvalid(path, expected, value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordInvalid(path, expected, value, "not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise RecordInvalid(path, expected, value,
                            "no timezone; add 'Z' or an offset such as +02:00")
    return (parsed - _EPOCH) // _MS


class _Compiler:
    def __init__(self, coerce: bool, allow_unknown_fields: bool) -> None:
        self.coerce = coerce
        self.allow_unknown = allow_unknown_fields
        self.named: dict[str, Checker] = {}
        self.named_desc: dict[str, str] = {}

    def compile(self, schema: Any, namespace: str | None = None) -> tuple[Checker, str]:
        """Checker and human description of ``schema``."""
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema, None)
            return self._ref(schema, namespace)
        kind = schema["type"]
        if kind in _PRIMITIVES:
            return self._primitive(kind, schema.get("logicalType"))
        if kind == "record" or kind == "error":
            return self._record(schema, namespace)
        if kind == "enum":
            return self._enum(schema, namespace)
        if kind == "array":
            return self._array(schema, namespace)
        if kind == "map":
            return self._map(schema, namespace)
        if kind == "fixed":
            return self._fixed(schema, namespace)
        return self.compile(kind, namespace)  # {"type": "OrderLine"} style reference

    @staticmethod
    def _full(name: str, namespace: str | None) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def _ref(self, name: str, namespace: str | None) -> tuple[Checker, str]:
        full = self._full(name, namespace)
        key = full if full in self.named else name
        named = self.named  # late-bound: a record may refer to itself

        def check(v: Any, path: str) -> Any:
            return named[key](v, path)

        return check, self.named_desc.get(key, name)

    def _primitive(self, kind: str, logical: str | None) -> tuple[Checker, str]:
        if kind == "long" and logical == "timestamp-millis":
            if self.coerce:
                return parse_timestamp_millis, "timestamp-millis (int epoch millis or ISO-8601)"
            kind = "long"
        if kind == "null":
            def check_null(v: Any, path: str) -> Any:
                if v is not None:
                    raise RecordInvalid(path, "null", v)
                return v
            return check_null, "null"
        if kind in ("int", "long"):
            lo, hi = _INT_RANGE if kind == "int" else _LONG_RANGE
            desc = "int (32-bit)" if kind == "int" else "long (64-bit int)"
            if logical == "timestamp-millis":
                desc = "timestamp-millis (int epoch millis)"

            def check_int(v: Any, path: str) -> Any:
                if not isinstance(v, int) or isinstance(v, bool):
                    raise RecordInvalid(path, desc, v)
                if not lo <= v <= hi:
                    raise RecordInvalid(path, desc, v, "out of range")
                return v
            return check_int, desc
        if kind in ("float", "double"):
            def check_float(v: Any, path: str) -> Any:
                if not isinstance(v, int | float) or isinstance(v, bool):
                    raise RecordInvalid(path, kind, v)
                return v
            return check_float, kind
        if kind == "boolean":
            def check_bool(v: Any, path: str) -> Any:
                if not isinstance(v, bool):
                    raise RecordInvalid(path, "boolean", v)
                return v
            return check_bool, "boolean"
        if kind == "string":
            def check_str(v: Any, path: str) -> Any:
                if not isinstance(v, str):
                    raise RecordInvalid(path, "string", v)
                return v
            return check_str, "string"
        coerce = self.coerce

        def check_bytes(v: Any, path: str) -> Any:
            if isinstance(v, bytes | bytearray):
                return v
            if coerce and isinstance(v, str):  # Avro's JSON encoding of bytes: latin-1 text
                return v.encode("latin-1")
            raise RecordInvalid(path, "bytes", v)
        return check_bytes, "bytes"

    def _union(self, branches: list[Any], namespace: str | None) -> tuple[Checker, str]:
        compiled = [self.compile(b, namespace) for b in branches]
        nullable = "null" in branches
        others = [c for b, c in zip(branches, compiled, strict=True) if b != "null"]
        desc = " or ".join(d for _, d in compiled)
        if len(others) == 1:
            inner = others[0][0]

            def check_optional(v: Any, path: str) -> Any:
                if v is None and nullable:
                    return None
                try:
                    return inner(v, path)
                except RecordInvalid as exc:
                    raise (exc.widen(desc) if exc.path == (path or "<record>") else exc) from None
            return check_optional, desc

        def check_union(v: Any, path: str) -> Any:
            if v is None and nullable:
                return None
            errors = []
            for check, _ in others:
                try:
                    return check(v, path)
                except RecordInvalid as exc:
                    errors.append(exc)
            deepest = max(errors, key=lambda e: len(e.path))
            if deepest.path != (path or "<record>"):
                raise deepest
            raise RecordInvalid(path, desc, v)
        return check_union, desc

    def _enum(self, schema: dict[str, Any], namespace: str | None) -> tuple[Checker, str]:
        symbols = frozenset(schema["symbols"])
        shown = ", ".join(schema["symbols"])
        desc = f"enum {schema['name']} ({shown})"

        def check(v: Any, path: str) -> Any:
            if not isinstance(v, str) or v not in symbols:
                raise RecordInvalid(path, desc, v)
            return v
        self._name(schema, namespace, check, desc)
        return check, desc

    def _fixed(self, schema: dict[str, Any], namespace: str | None) -> tuple[Checker, str]:
        size = schema["size"]
        desc = f"fixed {schema['name']} ({size} bytes)"

        def check(v: Any, path: str) -> Any:
            if not isinstance(v, bytes | bytearray) or len(v) != size:
                raise RecordInvalid(path, desc, v)
            return v
        self._name(schema, namespace, check, desc)
        return check, desc

    def _array(self, schema: dict[str, Any], namespace: str | None) -> tuple[Checker, str]:
        item, item_desc = self.compile(schema["items"], namespace)
        desc = f"array of {item_desc}"
        coerce = self.coerce

        def check(v: Any, path: str) -> Any:
            if not isinstance(v, list | tuple):
                raise RecordInvalid(path, desc, v)
            out = [item(x, f"{path}[{i}]") for i, x in enumerate(v)]
            return out if coerce else v
        return check, desc

    def _map(self, schema: dict[str, Any], namespace: str | None) -> tuple[Checker, str]:
        value, value_desc = self.compile(schema["values"], namespace)
        desc = f"map of string to {value_desc}"
        coerce = self.coerce

        def check(v: Any, path: str) -> Any:
            if not isinstance(v, dict):
                raise RecordInvalid(path, desc, v)
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise RecordInvalid(f"{path}[{k!r}]", "string map key", k)
                out[k] = value(x, f"{path}[{k!r}]")
            return out if coerce else v
        return check, desc

    def _name(self, schema: dict[str, Any], namespace: str | None, check: Checker,
              desc: str) -> None:
        full = self._full(schema["name"], schema.get("namespace", namespace))
        for key in (full, schema["name"]):
            self.named[key] = check
            self.named_desc[key] = desc

    def _record(self, schema: dict[str, Any], namespace: str | None) -> tuple[Checker, str]:
        ns = schema.get("namespace", namespace)
        name = schema["name"]
        desc = f"record {name}"
        slot: list[Checker] = []

        def check(v: Any, path: str) -> Any:
            return slot[0](v, path)
        self._name(schema, namespace, check, desc)  # before fields: allows recursion

        fields = []
        for f in schema["fields"]:
            field_check, field_desc = self.compile(f["type"], ns)
            fields.append((f["name"], field_check, field_desc, "default" in f, f.get("default")))
        known = frozenset(f[0] for f in fields)
        coerce, allow_unknown = self.coerce, self.allow_unknown

        def check_record(v: Any, path: str) -> Any:
            if not isinstance(v, dict):
                raise RecordInvalid(path, desc, v)
            prefix = f"{path}." if path else ""
            out: dict[str, Any] = {}
            for fname, fcheck, fdesc, has_default, default in fields:
                if fname in v:
                    out[fname] = fcheck(v[fname], prefix + fname)
                elif has_default:
                    out[fname] = copy.deepcopy(default)
                else:
                    raise RecordInvalid(prefix + fname, fdesc, MISSING,
                                        f"required field of {name} is missing")
            if not allow_unknown and len(v) > len(known):
                extra = sorted(str(k) for k in v if k not in known)
                if extra:
                    raise RecordInvalid(prefix + extra[0], f"a field of {name}", v[extra[0]],
                                        f"unknown field (fields: {', '.join(sorted(known))})")
            return out if coerce else v
        slot.append(check_record)
        return check, desc


class RecordValidator:
    """One schema compiled once; ``validate(record)`` raises ``RecordInvalid`` or returns it."""

    def __init__(self, schema: str | dict[str, Any], *, coerce: bool = False,
                 allow_unknown_fields: bool = False) -> None:
        obj = json.loads(schema) if isinstance(schema, str) else schema
        self.coerce = coerce
        self.name = obj.get("name", "?") if isinstance(obj, dict) else str(obj)
        self._check, self.description = _Compiler(coerce, allow_unknown_fields).compile(obj)

    def validate(self, record: Any) -> Any:
        """The record (a normalised copy with defaults when ``coerce``); raises RecordInvalid."""
        return self._check(record, "")


@lru_cache(maxsize=64)
def validator_for(record_name: str, *, coerce: bool = False) -> RecordValidator:
    """Cached validator for ``schemas/<record_name>.avsc``."""
    return RecordValidator(load_schema_text(record_name), coerce=coerce)


def validate(record: Any, schema: str | dict[str, Any], *, coerce: bool = False) -> Any:
    """Validate ``record`` against a record name (``"OrderEvent"``) or a schema (text or dict)."""
    if isinstance(schema, str) and not schema.lstrip().startswith("{"):
        return validator_for(schema, coerce=coerce).validate(record)
    return RecordValidator(schema, coerce=coerce).validate(record)
