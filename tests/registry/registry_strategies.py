"""Hypothesis strategies: random Avro schemas (as JSON) and data that conforms to them."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
SYMBOLS = ["A", "B", "C", "D", "E"]


def _leaf() -> st.SearchStrategy[Any]:
    enum = st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True).map(
        lambda symbols: {"type": "enum", "name": None, "symbols": symbols}
    )
    fixed = st.integers(0, 4).map(lambda n: {"type": "fixed", "name": None, "size": n})
    return st.sampled_from(PRIMITIVES) | enum | fixed


def _compound(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        children.map(lambda t: {"type": "array", "items": t})
        | children.map(lambda t: {"type": "map", "values": t})
        | st.lists(children, min_size=1, max_size=3)
        | st.lists(children, min_size=1, max_size=3).map(
            lambda ts: {"type": "record", "name": None,
                        "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(ts)]}
        )
    )


def field_types() -> st.SearchStrategy[Any]:
    return st.recursive(_leaf(), _compound, max_leaves=6)


def name_types(schema: Any, counter: itertools.count, prefix: str = "T") -> Any:  # type: ignore[type-arg]
    """Give every named type a unique name and make unions valid (no nesting, no duplicates)."""
    if isinstance(schema, list):
        branches: list[Any] = []
        labels: set[str] = set()
        for b in schema:
            if isinstance(b, list):
                continue
            b = name_types(b, counter, prefix)
            label = b if isinstance(b, str) else b.get("name") or b["type"]
            if label not in labels:
                labels.add(label)
                branches.append(b)
        return branches or ["null"]
    if isinstance(schema, dict):
        out = dict(schema)
        if "name" in out:
            out["name"] = f"{prefix}{next(counter)}"
        if "items" in out:
            out["items"] = name_types(out["items"], counter, prefix)
        if "values" in out:
            out["values"] = name_types(out["values"], counter, prefix)
        if "fields" in out:
            out["fields"] = [
                {**f, "type": name_types(f["type"], counter, prefix)} for f in out["fields"]
            ]
        return out
    return schema


@st.composite
def avro_schemas(draw: st.DrawFn, min_fields: int = 1) -> dict[str, Any]:
    """A top-level record with random fields (named types all distinct, no references)."""
    types = draw(st.lists(field_types(), min_size=min_fields, max_size=5))
    record = {"type": "record", "name": "Root", "namespace": "test",
              "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(types)]}
    return name_types(record, itertools.count())  # type: ignore[no-any-return]


def data_for(schema: Any) -> st.SearchStrategy[Any]:
    """Values valid for ``schema`` as fastavro expects them."""
    if isinstance(schema, list):
        return st.one_of([data_for(b) for b in schema])
    if isinstance(schema, str):
        return _PRIMITIVE_DATA[schema]
    kind = schema["type"]
    if kind in _PRIMITIVE_DATA:
        return _PRIMITIVE_DATA[kind]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(data_for(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=3), data_for(schema["values"]), max_size=3)
    return st.fixed_dictionaries({f["name"]: data_for(f["type"]) for f in schema["fields"]})


_PRIMITIVE_DATA: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=6),
    "string": st.text(max_size=6),
}
