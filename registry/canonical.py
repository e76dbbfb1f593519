"""Avro schema parsing, validation, Parsing Canonical Form and the CRC-64-AVRO fingerprint.

``parse_schema`` turns schema text into the node graph of ``avro_types`` and rejects anything the
Avro specification does not allow (bad names, redefined names, invalid defaults, nested unions,
...), with a message that says where. ``canonical_form`` implements the specification's
"Parsing Canonical Form" transformation; ``fingerprint64`` is its Rabin CRC-64 fingerprint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.avro_types import (
    NO_DEFAULT,
    PRIMITIVES,
    Array,
    AvroType,
    Enum,
    Field,
    Fixed,
    Map,
    Named,
    Primitive,
    Record,
    Union,
    branch_label,
)

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
FIELD_ORDERS = frozenset({"ascending", "descending", "ignore"})
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


class SchemaParseError(ValueError):
    """The schema text is not a valid Avro schema; the message says what and where."""


@dataclass(eq=False)
class ParsedSchema:
    """A parsed schema plus the derived forms the registry needs."""

    root: AvroType
    # Compact JSON of the text as submitted: what the registry stores and serves.
    normalized: str
    canonical: str
    fingerprint: int
    # Every named type visible to this schema (its own and those of its references).
    named: dict[str, Named] = field(default_factory=dict)


def parse_schema(text: str, known: Mapping[str, Named] | None = None) -> ParsedSchema:
    """Parse Avro schema ``text``; ``known`` holds named types from referenced schemas."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaParseError(f"the schema is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise SchemaParseError("the schema is nested too deeply") from exc
    parser = _Parser(known or {})
    try:
        root = parser.parse(doc, "", "")
    except RecursionError as exc:
        raise SchemaParseError("the schema is nested too deeply") from exc
    pcf = canonical_form(root)
    normalized = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return ParsedSchema(root, normalized, pcf, fingerprint64(pcf.encode()), parser.named)


def _fullname(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _check_fullname(fullname: str, where: str) -> None:
    parts = fullname.split(".")
    if not all(NAME_RE.match(p) for p in parts):
        raise SchemaParseError(f"invalid name '{fullname}' at {where or '/'}")


class _Parser:
    def __init__(self, known: Mapping[str, Named]) -> None:
        self.named: dict[str, Named] = dict(known)

    # -- dispatch ------------------------------------------------------------------------------
    def parse(self, node: Any, namespace: str, path: str) -> AvroType:
        if isinstance(node, str):
            return self._reference(node, namespace, path)
        if isinstance(node, list):
            return self._union(node, namespace, path)
        if not isinstance(node, dict):
            raise SchemaParseError(f"expected a type name, object or array at {path or '/'}")
        kind = node.get("type")
        if not isinstance(kind, str):
            raise SchemaParseError(f"no valid 'type' attribute at {path or '/'}: {node!r:.120}")
        props = {k: v for k, v in node.items() if k not in _RESERVED.get(kind, ())}
        if kind in PRIMITIVES:
            return Primitive(kind, props=props)
        if kind in ("record", "error"):
            return self._record(node, kind, namespace, path, props)
        if kind == "enum":
            return self._enum(node, namespace, path, props)
        if kind == "fixed":
            return self._fixed(node, namespace, path, props)
        if kind == "array":
            if "items" not in node:
                raise SchemaParseError(f"array at {path or '/'} has no 'items'")
            return Array(kind, items=self.parse(node["items"], namespace, f"{path}/items"),
                         props=props)
        if kind == "map":
            if "values" not in node:
                raise SchemaParseError(f"map at {path or '/'} has no 'values'")
            return Map(kind, values=self.parse(node["values"], namespace, f"{path}/values"),
                       props=props)
        # A bare name used as {"type": "com.acme.Address"} refers to a named type.
        return self._reference(kind, namespace, path)

    def _reference(self, name: str, namespace: str, path: str) -> AvroType:
        if name in PRIMITIVES:
            return Primitive(name)
        for candidate in (_fullname(name, namespace), name):
            if candidate in self.named:
                return self.named[candidate]
        raise SchemaParseError(f"unknown type '{name}' at {path or '/'}")

    # -- named types ---------------------------------------------------------------------------
    def _define(
        self, node: dict[str, Any], namespace: str, path: str
    ) -> tuple[str, tuple[str, ...]]:
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaParseError(f"named type at {path or '/'} has no valid 'name'")
        ns = node.get("namespace", namespace)
        if ns is None:
            ns = ""
        if not isinstance(ns, str):
            raise SchemaParseError(f"'namespace' at {path or '/'} must be a string")
        fullname = _fullname(name, ns)
        _check_fullname(fullname, path)
        if fullname in PRIMITIVES:
            raise SchemaParseError(f"'{fullname}' at {path or '/'} redefines a primitive type")
        if fullname in self.named:
            raise SchemaParseError(f"can't redefine '{fullname}' at {path or '/'}")
        aliases = node.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise SchemaParseError(f"'aliases' of '{fullname}' must be a list of names")
        inner_ns = fullname.rsplit(".", 1)[0] if "." in fullname else ""
        full_aliases = tuple(_fullname(a, inner_ns) for a in aliases)
        for alias in full_aliases:
            _check_fullname(alias, path)
        return fullname, full_aliases

    def _record(
        self, node: dict[str, Any], kind: str, namespace: str, path: str, props: dict[str, Any]
    ) -> Record:
        fullname, aliases = self._define(node, namespace, path)
        record = Record(kind, fullname=fullname, aliases=aliases, props=props)
        # Registered before its fields are parsed so that a field can refer to the record itself.
        self.named[fullname] = record
        raw_fields = node.get("fields")
        if not isinstance(raw_fields, list):
            raise SchemaParseError(f"record '{fullname}' must have a 'fields' list")
        inner_ns = record.namespace
        seen: set[str] = set()
        for i, raw in enumerate(raw_fields):
            fpath = f"{path}/fields/{i}"
            if not isinstance(raw, dict):
                raise SchemaParseError(f"field at {fpath} of '{fullname}' must be an object")
            fname = raw.get("name")
            if not isinstance(fname, str) or not NAME_RE.match(fname):
                raise SchemaParseError(f"field at {fpath} of '{fullname}' has an invalid name")
            if fname in seen:
                raise SchemaParseError(f"record '{fullname}' has two fields named '{fname}'")
            seen.add(fname)
            if "type" not in raw:
                raise SchemaParseError(f"field '{fname}' of '{fullname}' has no 'type'")
            ftype = self.parse(raw["type"], inner_ns, f"{fpath}/type")
            order = raw.get("order", "ascending")
            if order not in FIELD_ORDERS:
                raise SchemaParseError(f"field '{fname}' of '{fullname}' has invalid order")
            faliases = raw.get("aliases", [])
            if not isinstance(faliases, list) or not all(isinstance(a, str) for a in faliases):
                raise SchemaParseError(f"'aliases' of field '{fname}' must be a list of names")
            default = raw.get("default", NO_DEFAULT)
            if default is not NO_DEFAULT:
                problem = default_problem(ftype, default)
                if problem:
                    raise SchemaParseError(
                        f"invalid default for field '{fname}' of '{fullname}': {problem}"
                    )
            record.fields.append(Field(fname, ftype, default, tuple(faliases)))
        return record

    def _enum(
        self, node: dict[str, Any], namespace: str, path: str, props: dict[str, Any]
    ) -> Enum:
        fullname, aliases = self._define(node, namespace, path)
        symbols = node.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise SchemaParseError(f"enum '{fullname}' must have a 'symbols' list of strings")
        for s in symbols:
            if not NAME_RE.match(s):
                raise SchemaParseError(f"enum '{fullname}' has an invalid symbol '{s}'")
        if len(set(symbols)) != len(symbols):
            raise SchemaParseError(f"enum '{fullname}' has duplicate symbols")
        default = node.get("default")
        if default is not None and default not in symbols:
            raise SchemaParseError(f"default '{default}' of enum '{fullname}' is not a symbol")
        enum = Enum("enum", fullname=fullname, aliases=aliases, symbols=tuple(symbols),
                    default=default, props=props)
        self.named[fullname] = enum
        return enum

    def _fixed(
        self, node: dict[str, Any], namespace: str, path: str, props: dict[str, Any]
    ) -> Fixed:
        fullname, aliases = self._define(node, namespace, path)
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise SchemaParseError(f"fixed '{fullname}' must have a non-negative integer 'size'")
        fixed = Fixed("fixed", fullname=fullname, aliases=aliases, size=size, props=props)
        self.named[fullname] = fixed
        return fixed

    def _union(self, node: list[Any], namespace: str, path: str) -> Union:
        branches: list[AvroType] = []
        labels: set[str] = set()
        for i, raw in enumerate(node):
            branch = self.parse(raw, namespace, f"{path}/{i}")
            if isinstance(branch, Union):
                raise SchemaParseError(f"union at {path or '/'} directly contains another union")
            label = branch_label(branch)
            if label in labels:
                raise SchemaParseError(f"union at {path or '/'} contains '{label}' twice")
            labels.add(label)
            branches.append(branch)
        return Union("union", branches=tuple(branches))


# Attributes that define the type itself; anything else on a schema object is a property.
_NAMED_ATTRS = ("type", "name", "namespace", "aliases", "doc")
_RESERVED: dict[str, tuple[str, ...]] = {
    "record": (*_NAMED_ATTRS, "fields"),
    "error": (*_NAMED_ATTRS, "fields"),
    "enum": (*_NAMED_ATTRS, "symbols", "default"),
    "fixed": (*_NAMED_ATTRS, "size"),
    "array": ("type", "items"),
    "map": ("type", "values"),
    **{p: ("type",) for p in PRIMITIVES},
}


def default_problem(t: AvroType, value: Any) -> str | None:
    """Why ``value`` is not a valid JSON default for type ``t`` (None when it is valid)."""
    if isinstance(t, Union):
        # Avro 1.12: a union default may match any branch (formerly only the first one).
        if any(default_problem(b, value) is None for b in t.branches):
            return None
        return f"{value!r:.60} matches no branch of {t.describe()}"
    ok = _default_ok(t, value)
    return None if ok else f"{value!r:.60} is not a valid {t.describe()}"


def _default_ok(t: AvroType, value: Any) -> bool:
    kind = t.kind
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "int":
        return is_int and INT_RANGE[0] <= value <= INT_RANGE[1]
    if kind == "long":
        return is_int and LONG_RANGE[0] <= value <= LONG_RANGE[1]
    if kind in ("float", "double"):
        return is_int or isinstance(value, float)
    if kind == "string":
        return isinstance(value, str)
    if kind == "bytes":
        return isinstance(value, str) and all(ord(c) < 256 for c in value)
    if isinstance(t, Fixed):
        return isinstance(value, str) and len(value) == t.size and all(ord(c) < 256 for c in value)
    if isinstance(t, Enum):
        return isinstance(value, str) and value in t.symbols
    if isinstance(t, Array):
        return isinstance(value, list) and all(default_problem(t.items, v) is None for v in value)
    if isinstance(t, Map):
        return isinstance(value, dict) and all(
            default_problem(t.values, v) is None for v in value.values()
        )
    if isinstance(t, Record):
        if not isinstance(value, dict):
            return False
        for f in t.fields:
            if f.name in value:
                if default_problem(f.type, value[f.name]) is not None:
                    return False
            elif not f.has_default:
                return False
        return True
    return False


def canonical_form(root: AvroType) -> str:
    """The specification's Parsing Canonical Form: fullnames, only the attributes that matter
    for reading (name, type, fields, symbols, items, values, size) in that order, no spaces."""
    seen: set[str] = set()
    out: list[str] = []

    def s(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    def emit(t: AvroType) -> None:
        if isinstance(t, Primitive):
            out.append(s(t.kind))
        elif isinstance(t, Named):
            if t.fullname in seen:
                out.append(s(t.fullname))
                return
            seen.add(t.fullname)
            out.append(f'{{"name":{s(t.fullname)},"type":{s(t.kind)}')
            if isinstance(t, Record):
                out.append(',"fields":[')
                for i, f in enumerate(t.fields):
                    out.append(f'{"," if i else ""}{{"name":{s(f.name)},"type":')
                    emit(f.type)
                    out.append("}")
                out.append("]")
            elif isinstance(t, Enum):
                out.append(',"symbols":[' + ",".join(s(x) for x in t.symbols) + "]")
            elif isinstance(t, Fixed):
                out.append(f',"size":{t.size}')
            out.append("}")
        elif isinstance(t, Array):
            out.append('{"type":"array","items":')
            emit(t.items)
            out.append("}")
        elif isinstance(t, Map):
            out.append('{"type":"map","values":')
            emit(t.values)
            out.append("}")
        elif isinstance(t, Union):
            out.append("[")
            for i, b in enumerate(t.branches):
                if i:
                    out.append(",")
                emit(b)
            out.append("]")

    emit(root)
    return "".join(out)


_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def fingerprint64(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) fingerprint of ``data``, as an unsigned 64-bit integer."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp
