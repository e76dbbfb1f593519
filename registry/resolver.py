"""Parse schemas together with the schemas they reference, caching parses by global id."""

from __future__ import annotations

from collections import OrderedDict

from registry.avro_types import Named
from registry.canonical import ParsedSchema, SchemaParseError, parse_schema
from registry.errors import InvalidSchema
from registry.state import AVRO, Reference, RegistryState

SUPPORTED_TYPES = (AVRO,)
MAX_REFERENCE_DEPTH = 32
# Clients look the same schema texts up again and again (every producer start): parses of
# self-contained schemas are remembered, the least recently used forgotten first.
PARSE_CACHE_SIZE = 1024


class SchemaResolver:
    def __init__(self, state: RegistryState) -> None:
        self.state = state
        self._by_id: dict[int, ParsedSchema] = {}
        self._by_text: OrderedDict[tuple[str, str], ParsedSchema] = OrderedDict()

    def parse(self, schema_type: str, text: str, references: tuple[Reference, ...]) -> ParsedSchema:
        """Parse a submitted schema; any problem becomes a 42201 with the reason."""
        if schema_type not in SUPPORTED_TYPES:
            raise InvalidSchema(
                f"schemaType '{schema_type}' is not supported; this registry accepts only AVRO"
            )
        if references:
            # Resolved against the current state every time: a referenced version may vanish.
            known = self._known_names(references, 0)
            try:
                return parse_schema(text, known)
            except SchemaParseError as exc:
                raise InvalidSchema(str(exc)) from exc
        key = (schema_type, text)
        parsed = self._by_text.get(key)
        if parsed is not None:
            self._by_text.move_to_end(key)
            return parsed
        try:
            parsed = parse_schema(text)
        except SchemaParseError as exc:
            raise InvalidSchema(str(exc)) from exc
        self._by_text[key] = parsed
        if len(self._by_text) > PARSE_CACHE_SIZE:
            self._by_text.popitem(last=False)
        return parsed

    def by_id(self, schema_id: int) -> ParsedSchema:
        return self._by_id_at_depth(schema_id, 0)

    def _by_id_at_depth(self, schema_id: int, depth: int) -> ParsedSchema:
        parsed = self._by_id.get(schema_id)
        if parsed is None:
            entry = self.state.schemas[schema_id]
            known = self._known_names(entry.references, depth)
            try:
                parsed = parse_schema(entry.text, known)
            except SchemaParseError as exc:
                raise InvalidSchema(f"stored schema {schema_id} no longer parses: {exc}") from exc
            self._by_id[schema_id] = parsed
        return parsed

    def _known_names(self, references: tuple[Reference, ...], depth: int) -> dict[str, Named]:
        if depth > MAX_REFERENCE_DEPTH:
            raise InvalidSchema("schema references are nested too deeply (or form a cycle)")
        known: dict[str, Named] = {}
        for ref in references:
            entry = self.state.subjects.get(ref.subject, {}).get(ref.version)
            if entry is None or entry.deleted:
                raise InvalidSchema(
                    f"reference '{ref.name}' names subject '{ref.subject}' version "
                    f"{ref.version}, which does not exist"
                )
            parsed = self._by_id_at_depth(entry.schema_id, depth + 1)
            if ref.name not in parsed.named:
                raise InvalidSchema(
                    f"reference '{ref.name}': subject '{ref.subject}' version {ref.version} "
                    "defines no type of that name"
                )
            known.update(parsed.named)
        return known

    def forget(self, schema_id: int) -> None:
        self._by_id.pop(schema_id, None)
