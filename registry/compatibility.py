"""Schema compatibility per the Avro specification's schema resolution rules.

``reader_problems(reader, writer)`` lists every reason data written with ``writer`` could not be
read with ``reader``: missing defaults, type mismatches, enum symbols the reader lacks, fixed
sizes, unmatched union branches, mismatched names (aliases honoured). Permitted promotions are
int->long->float->double and string<->bytes.

``check_compatibility`` applies a level (BACKWARD, FORWARD, FULL, their transitive variants,
NONE) to a new schema and the subject's existing versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from registry.avro_types import (
    Array,
    AvroType,
    Enum,
    Fixed,
    Map,
    Named,
    Primitive,
    Record,
    Union,
)


class Level(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> Level | None:
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        return None

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = Level.BACKWARD

# Writer type -> reader types that can read it (besides the identical type).
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader cannot read a writer's data. ``path`` points into the reader."""

    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} at '{self.path}': {self.message}"


def reader_problems(reader: AvroType, writer: AvroType) -> list[Incompatibility]:
    """Every incompatibility found when ``reader`` resolves data written with ``writer``."""
    return _Checker().check(reader, writer, "/")


class _Checker:
    def __init__(self) -> None:
        # Named pairs being compared further up the stack: a recursive type that reaches the
        # same pair again is assumed compatible, the rest of the walk decides.
        self._active: set[tuple[int, int]] = set()

    def check(self, r: AvroType, w: AvroType, path: str) -> list[Incompatibility]:
        if isinstance(w, Union):
            problems: list[Incompatibility] = []
            for b in w.branches:
                problems.extend(self.check(r, b, path))
            return problems
        if isinstance(r, Union):
            for i, branch in enumerate(r.branches):
                if not self.check(branch, w, f"{_join(path, str(i))}"):
                    return []
            return [Incompatibility(
                "MISSING_UNION_BRANCH", path,
                f"reader {r.describe()} has no branch that can read writer type {w.describe()}",
            )]
        if isinstance(r, Primitive) and isinstance(w, Primitive):
            if r.kind == w.kind or r.kind in PROMOTIONS.get(w.kind, ()):
                return []
            return [_mismatch(r, w, path)]
        if isinstance(r, Array) and isinstance(w, Array):
            return self.check(r.items, w.items, _join(path, "items"))
        if isinstance(r, Map) and isinstance(w, Map):
            return self.check(r.values, w.values, _join(path, "values"))
        # "record" and "error" are both Record nodes and resolve against each other.
        if isinstance(r, Named) and isinstance(w, Named) and type(r) is type(w):
            if not _names_match(r, w):
                return [Incompatibility(
                    "NAME_MISMATCH", _join(path, "name"),
                    f"reader {r.describe()} does not match writer name '{w.fullname}' "
                    "(neither the name nor an alias)",
                )]
            key = (id(r), id(w))
            if key in self._active:
                return []
            self._active.add(key)
            try:
                return self._named(r, w, path)
            finally:
                self._active.discard(key)
        return [_mismatch(r, w, path)]

    def _named(self, r: Named, w: Named, path: str) -> list[Incompatibility]:
        if isinstance(r, Fixed) and isinstance(w, Fixed):
            if r.size != w.size:
                return [Incompatibility(
                    "FIXED_SIZE_MISMATCH", _join(path, "size"),
                    f"reader fixed '{r.fullname}' has size {r.size}, writer has size {w.size}",
                )]
            return []
        if isinstance(r, Enum) and isinstance(w, Enum):
            missing = [s for s in w.symbols if s not in r.symbols]
            if missing and r.default is None:
                return [Incompatibility(
                    "MISSING_ENUM_SYMBOLS", _join(path, "symbols"),
                    f"reader enum '{r.fullname}' lacks writer symbols {missing} and has no "
                    "default symbol",
                )]
            return []
        if isinstance(r, Record) and isinstance(w, Record):
            return self._record(r, w, path)
        return []

    def _record(self, r: Record, w: Record, path: str) -> list[Incompatibility]:
        problems: list[Incompatibility] = []
        for i, rf in enumerate(r.fields):
            fpath = _join(path, f"fields/{i}")
            wf = w.field_named(rf.name)
            if wf is None:
                wf = next((w.field_named(a) for a in rf.aliases if w.field_named(a)), None)
            if wf is None:
                if not rf.has_default:
                    problems.append(Incompatibility(
                        "READER_FIELD_MISSING_DEFAULT_VALUE", fpath,
                        f"field '{rf.name}' of record '{r.fullname}' is missing in the writer "
                        "schema and has no default value in the reader schema",
                    ))
                continue
            for p in self.check(rf.type, wf.type, _join(fpath, "type")):
                problems.append(Incompatibility(
                    p.kind, p.path, f"field '{rf.name}' of record '{r.fullname}': {p.message}"
                ))
        return problems


def _join(path: str, part: str) -> str:
    return f"{path.rstrip('/')}/{part}"


def _names_match(r: Named, w: Named) -> bool:
    # Unqualified names match, so a namespace may change between versions; reader aliases may
    # name the writer's full name or its unqualified name.
    if r.name == w.name:
        return True
    return any(a == w.fullname or a.rsplit(".", 1)[-1] == w.name for a in r.aliases)


def _mismatch(r: AvroType, w: AvroType, path: str) -> Incompatibility:
    return Incompatibility(
        "TYPE_MISMATCH", path, f"reader type {r.describe()} cannot read writer type {w.describe()}"
    )


@dataclass(frozen=True)
class PreviousVersion:
    version: int
    schema: AvroType


def check_compatibility(
    level: Level, new: AvroType, previous: Sequence[PreviousVersion]
) -> list[str]:
    """Messages for every violation of ``level`` by ``new`` against ``previous`` (oldest first).

    Non-transitive levels compare with the latest version only. An empty list means compatible.
    """
    if level is Level.NONE or not previous:
        return []
    targets = previous if level.transitive else previous[-1:]
    messages: list[str] = []
    for prev in reversed(targets):
        if level.backward:
            for p in reader_problems(new, prev.schema):
                messages.append(
                    f"{p.kind} at '{p.path}': {p.message} (new schema reading data written "
                    f"with version {prev.version}, compatibility {level.value})"
                )
        if level.forward:
            for p in reader_problems(prev.schema, new):
                messages.append(
                    f"{p.kind} at '{p.path}': {p.message} (version {prev.version} reading data "
                    f"written with the new schema, compatibility {level.value})"
                )
    return messages
