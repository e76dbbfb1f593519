"""Avro binary writers compiled from a schema: straight-line Python per record type.

Why: fastavro's writer walks the schema for every record and resolves each nullable field by
validating the value against every branch of its union; the canonical FulfillmentState has
~45 fields, a dozen of them nullable, and one is emitted for most input events, so its
encoding was the largest single cost of a live worker. A writer generated once from the
schema does the same encoding with no lookups: ~1.6x faster here, byte for byte the same
(tests/serde/test_avro_writer.py compares it with fastavro on generated traffic).

It covers what our schemas use — records, enums, arrays, maps, strings, bytes, booleans,
int/long, float/double and unions of null with one other type. `compile_writer` returns None
for anything else, and the caller keeps fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Writer = Callable[[dict[str, Any]], bytes]

# Zig-zag varints of -64..63 are one byte: most quantities, counts, lengths and indexes.
_SMALL = {n: bytes([(n << 1) ^ (n >> 63)]) for n in range(-64, 64)}

# Larger longs are memoised: a state re-emitted per version repeats its timestamps (accepted_at,
# promised_*) and amounts, and a dict hit is ~10x cheaper than the varint loop. Bounded: cleared
# when full (~4 MB at most).
_MEMO_MAX = 32_768

_PRELUDE = '''
def _long(n):
    if -64 <= n < 64:
        return _SMALL[n]
    if type(n) is int:  # never a float that equals a memoised int
        b = _MEMO.get(n)
        if b is not None:
            return b
    if not -0x8000000000000000 <= n <= 0x7FFFFFFFFFFFFFFF:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    b = bytes(out)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[n] = b
    return b


def _bytes(b):
    n = len(b)
    return (_SMALL[n] if n < 64 else _long(n)) + b


def _str(s):
    return _bytes(s.encode())
'''

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _not_bool(value: Any) -> bytes:
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


# What every generated writer calls (zig-zag varints, length-prefixed bytes and strings).
_RUNTIME: dict[str, Any] = {
    "_SMALL": _SMALL, "_MEMO": {}, "_MEMO_MAX": _MEMO_MAX,
    "_TRUE": b"\x01", "_FALSE": b"\x00", "_not_bool": _not_bool,
    "_pack_float": struct.Struct("<f").pack, "_pack_double": struct.Struct("<d").pack,
}
exec(_PRELUDE, _RUNTIME)


class Unsupported(Exception):
    """The schema uses a construct this compiler does not write (fastavro does)."""


class _Compiler:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names = 0
        self.named: dict[str, Any] = {}
        self.constants: dict[str, Any] = {}

    def fresh(self) -> str:
        self.names += 1
        return f"v{self.names}"

    def emit(self, indent: int, code: str) -> None:
        self.lines.append("    " * indent + code)

    def write(self, schema: Any, expr: str, indent: int) -> None:
        if isinstance(schema, list):
            self.union(schema, expr, indent)
        elif isinstance(schema, dict):
            self.complex(schema, expr, indent)
        elif schema in _PRIMITIVES:
            self.primitive(schema, expr, indent)
        elif schema in self.named:
            self.write(self.named[schema], expr, indent)
        else:
            raise Unsupported(f"type {schema!r}")

    def primitive(self, kind: str, expr: str, indent: int) -> None:
        if kind == "null":
            self.emit(indent, f"if {expr} is not None: raise TypeError('expected null')")
        elif kind == "boolean":
            flag = self.fresh()
            self.emit(indent, f"{flag} = {expr}")
            self.emit(indent, f"w(_TRUE if {flag} is True else _FALSE if {flag} is False "
                              f"else _not_bool({flag}))")
        elif kind in ("int", "long"):
            # _long refuses what is not an int (a float or str fails its comparisons/shifts).
            self.emit(indent, f"w(_long({expr}))")
        elif kind == "float":
            self.emit(indent, f"w(_pack_float({expr}))")
        elif kind == "double":
            self.emit(indent, f"w(_pack_double({expr}))")
        elif kind == "bytes":
            self.emit(indent, f"w(_bytes({expr}))")
        else:
            self.emit(indent, f"w(_str({expr}))")

    def union(self, branches: list[Any], expr: str, indent: int) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported(f"union {branches!r}")
        null_index = branches.index("null")
        value = self.fresh()
        self.emit(indent, f"{value} = {expr}")
        self.emit(indent, f"if {value} is None:")
        self.emit(indent + 1, f"w({_SMALL[null_index]!r})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"w({_SMALL[1 - null_index]!r})")
        self.write(branches[1 - null_index], value, indent + 1)

    def complex(self, schema: dict[str, Any], expr: str, indent: int) -> None:
        kind = schema["type"]
        if kind in _PRIMITIVES:  # {"type": "long", "logicalType": ...} and the like
            self.primitive(kind, expr, indent)
        elif kind == "record":
            self.named[schema["name"]] = schema
            record = self.fresh()
            self.emit(indent, f"{record} = {expr}")
            for f in schema["fields"]:
                # A missing field takes its default, as fastavro's writer does.
                field = (f"{record}.get({f['name']!r}, {f['default']!r})" if "default" in f
                         else f"{record}[{f['name']!r}]")
                self.write(f["type"], field, indent)
        elif kind == "enum":
            self.named[schema["name"]] = schema
            table = f"_enum{len(self.constants)}"
            self.constants[table] = {s: _RUNTIME["_long"](i)
                                     for i, s in enumerate(schema["symbols"])}
            self.emit(indent, f"w({table}[{expr}])")
        elif kind in ("array", "map"):
            items = self.fresh()
            self.emit(indent, f"{items} = {expr}")
            count = self.fresh()
            self.emit(indent, f"{count} = len({items})")  # None or a scalar fails here
            self.emit(indent, f"if {count}:")
            self.emit(indent + 1, f"w(_long({count}))")
            item = self.fresh()
            if kind == "array":
                self.emit(indent + 1, f"for {item} in {items}:")
                self.write(schema["items"], item, indent + 2)
            else:
                key = self.fresh()
                self.emit(indent + 1, f"for {key}, {item} in {items}.items():")
                self.emit(indent + 2, f"w(_str({key}))")
                self.write(schema["values"], item, indent + 2)
            self.emit(indent, "w(b'\\x00')")
        else:
            raise Unsupported(f"type {kind!r}")


def compile_writer(schema: Any) -> Writer | None:
    """A function record -> Avro binary (no framing) for `schema` (parsed JSON, logical types
    stripped), or None when the schema uses something not covered here."""
    compiler = _Compiler()
    compiler.emit(0, "def write(d):")
    compiler.emit(1, "out = []")
    compiler.emit(1, "w = out.append")
    try:
        compiler.write(schema, "d", 1)
    except Unsupported:
        return None
    compiler.emit(1, "return b''.join(out)")
    namespace = {**_RUNTIME, **compiler.constants}
    exec("\n".join(compiler.lines), namespace)  # our own generated code, from our schemas
    writer: Writer = namespace["write"]
    return writer
