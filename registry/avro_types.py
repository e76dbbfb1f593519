"""The parsed form of an Avro schema: a small graph of typed nodes.

Named types are shared objects, so a recursive record points at itself and a type defined in a
referenced schema is the very same node in every schema that uses it. Compatibility checks and the
Parsing Canonical Form both walk this graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})



class NoDefault:
    """Marker for "this field declares no default" (``None`` is the JSON ``null`` default)."""

    _instance: NoDefault | None = None

    def __new__(cls) -> NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = NoDefault()


@dataclass(eq=False)
class AvroType:
    """Base node. ``kind`` is the Avro type name: a primitive, record, enum, array, ..."""

    kind: str
    props: dict[str, Any] = field(default_factory=dict, kw_only=True)

    def describe(self) -> str:
        return self.kind


@dataclass(eq=False)
class Primitive(AvroType):
    pass


@dataclass(eq=False)
class Named(AvroType):
    fullname: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.fullname.rsplit(".", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.fullname.rsplit(".", 1)[0] if "." in self.fullname else ""

    def describe(self) -> str:
        return f"{self.kind} '{self.fullname}'"


@dataclass(eq=False)
class Field:
    name: str
    type: AvroType
    default: Any = NO_DEFAULT
    aliases: tuple[str, ...] = ()

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


@dataclass(eq=False)
class Record(Named):
    fields: list[Field] = field(default_factory=list)

    def field_named(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(eq=False)
class Enum(Named):
    symbols: tuple[str, ...] = ()
    default: str | None = None


@dataclass(eq=False)
class Fixed(Named):
    size: int = 0


@dataclass(eq=False)
class Array(AvroType):
    items: AvroType = field(default_factory=lambda: Primitive("null"))


@dataclass(eq=False)
class Map(AvroType):
    values: AvroType = field(default_factory=lambda: Primitive("null"))


@dataclass(eq=False)
class Union(AvroType):
    branches: tuple[AvroType, ...] = ()

    def describe(self) -> str:
        return "union [" + ", ".join(branch_label(b) for b in self.branches) + "]"


def branch_label(t: AvroType) -> str:
    """The name that identifies a union branch: the full name for named types, else the kind."""
    return t.fullname if isinstance(t, Named) else t.kind
