"""Confluent wire format <-> dicts: the hot path of every agent.

Wire format: magic byte ``0x00``, 4-byte big-endian schema id, Avro binary (no container).
Writer schemas are fetched once per id from a ``SchemaSource`` and parsed once; encoders register
(or look up) their subject once. Schemas are parsed with ``logicalType`` stripped, so timestamps
stay ``int`` epoch millis: the binary encoding is identical and no datetimes are built per record.

Neither class is thread-safe (the encoder reuses one buffer): use one per thread / event loop.
"""

from __future__ import annotations

import json
import time
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from faust.serializers.codecs import Codec
from faust.serializers.codecs import register as _register_codec

from streams.avro_reader import Reader, compile_reader
from streams.avro_writer import compile_writer
from streams.schema_source import SchemaNotFound, SchemaSource, canonical_text
from tables.schema_files import load_schema_text, strip_logical_types

MAGIC_BYTE = 0
HEADER_SIZE = 5
_UNKNOWN_ID_TTL_S = 30.0


class SerdeError(Exception):
    """Base of serde failures; ``stage`` names where it happened in a dead letter."""

    stage = "deserialize"


class DecodeError(SerdeError, ValueError):
    """The bytes cannot become a record: dead-letter them (retrying will not help)."""

    def __init__(self, message: str, *, schema_id: int | None = None, size: int = 0) -> None:
        super().__init__(message)
        self.schema_id = schema_id
        self.size = size


class BadMagicByte(DecodeError):
    """Not Confluent wire format (first byte is not 0x00, or shorter than the header)."""


class UnknownSchemaId(DecodeError):
    """The schema id in the header is unknown to the registry."""


class CorruptRecord(DecodeError):
    """The Avro body does not match the schema its id names."""


class TruncatedRecord(CorruptRecord):
    """The Avro body ended before the record did."""


class IncompatibleSchema(DecodeError):
    """Writer schema cannot be resolved to our reader schema (Avro resolution rules)."""


class EncodeError(SerdeError, ValueError):
    stage = "serialize"


class SubjectNotRegistered(SerdeError, LookupError):
    """auto_register is off and the subject (or this schema under it) is not registered."""

    stage = "serialize"


def _preview(data: bytes, n: int = 16) -> str:
    head = data[:n].hex(" ")
    return head + (" ..." if len(data) > n else "")


def parse_for_io(schema: str | dict[str, Any]) -> dict[str, Any]:
    """Parse a schema for reading/writing with logical types stripped (timestamps stay ints)."""
    obj = json.loads(schema) if isinstance(schema, str) else schema
    parsed: dict[str, Any] = parse_schema(strip_logical_types(obj), named_schemas={})
    return parsed


def _full_name(schema: str | dict[str, Any]) -> str:
    obj = json.loads(schema) if isinstance(schema, str) else schema
    if not isinstance(obj, dict):
        return str(obj)
    name = str(obj.get("name", obj.get("type", "?")))
    ns = obj.get("namespace")
    return f"{ns}.{name}" if ns and "." not in name else name


class WireDecoder:
    """Decode Confluent-framed Avro to dicts, resolving to ``reader_schema`` when given."""

    def __init__(self, source: SchemaSource, reader_schema: str | dict[str, Any] | None = None,
                 *, registry_hint: str = "the schema registry") -> None:
        self.source = source
        self.registry_hint = registry_hint
        self._reader = parse_for_io(reader_schema) if reader_schema is not None else None
        self._reader_text = (canonical_text(strip_logical_types(
            json.loads(reader_schema) if isinstance(reader_schema, str) else reader_schema))
            if reader_schema is not None else None)
        # id -> (parsed writer schema, parsed reader schema or None when equal, record name)
        self._cache: dict[int, tuple[dict[str, Any], dict[str, Any] | None, str]] = {}
        # id -> a reader compiled from the writer schema (streams/avro_reader.py), for the ids
        # that need no resolution and that it covers
        self._compiled: dict[int, Reader] = {}
        self._unknown: dict[int, float] = {}  # id -> monotonic time it was reported missing

    @classmethod
    def for_record(cls, source: SchemaSource, record_name: str, **kw: Any) -> WireDecoder:
        """A decoder that reads any writer version as our current ``schemas/<record>.avsc``."""
        return cls(source, load_schema_text(record_name), **kw)

    @property
    def cached_ids(self) -> list[int]:
        return sorted(self._cache)

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) < HEADER_SIZE or data[0] != MAGIC_BYTE:
            raise self._bad_header(data)
        schema_id = int.from_bytes(data[1:5], "big")
        compiled = self._compiled.get(schema_id)
        if compiled is not None:
            try:
                record, end = compiled(data, HEADER_SIZE)
                if end == len(data):
                    return record
            except Exception:  # fastavro below reads it again and says why
                pass
        entry = self._cache.get(schema_id)
        if entry is None:
            entry = self._load(schema_id, len(data))
            if entry[1] is None:  # read as written: no resolution needed
                reader = compile_reader(entry[0])
                if reader is not None:
                    self._compiled[schema_id] = reader
        fo = BytesIO(data)  # shares the bytes object's buffer: no copy
        fo.seek(HEADER_SIZE)
        try:
            record: dict[str, Any] = schemaless_reader(fo, entry[0], entry[1])
        except Exception as exc:
            raise self._body_error(data, schema_id, entry[2], exc, fo.tell()) from exc
        if fo.tell() != len(data):
            raise CorruptRecord(
                f"decoded {entry[2]} with schema id {schema_id} but {len(data) - fo.tell()} of "
                f"{len(data)} bytes were left over: the payload was written with a different "
                "schema than its id names (producer bug). Dead-letter it and fix the producer.",
                schema_id=schema_id, size=len(data))
        return record

    def schema_id_of(self, data: bytes) -> int:
        if len(data) < HEADER_SIZE or data[0] != MAGIC_BYTE:
            raise self._bad_header(data)
        return int.from_bytes(data[1:5], "big")

    def prefetch(self, schema_id: int) -> None:
        """Warm the cache (e.g. at start-up, for the ids a topic is known to carry)."""
        if schema_id not in self._cache:
            self._load(schema_id, 0)

    def _load(self, schema_id: int, size: int) -> tuple[dict[str, Any], dict[str, Any] | None,
                                                       str]:
        missed_at = self._unknown.get(schema_id)
        if missed_at is not None and time.monotonic() - missed_at < _UNKNOWN_ID_TTL_S:
            # A poison stream of unknown ids must not turn into one HTTP call per record.
            raise self._unknown_id(schema_id, size, "(cached answer)")
        try:
            text = self.source.schema_by_id(schema_id)
        except SchemaNotFound as exc:
            self._unknown[schema_id] = time.monotonic()
            raise self._unknown_id(schema_id, size, str(exc)) from exc
        writer = parse_for_io(text)
        reader = self._reader
        if reader is not None and canonical_text(strip_logical_types(json.loads(text))) == \
                self._reader_text:
            reader = None  # same schema: skip fastavro's resolution path
        if reader is not None:
            self._check_resolvable(schema_id, writer, reader)
        entry = (writer, reader, _full_name(text))
        self._cache[schema_id] = entry
        self._unknown.pop(schema_id, None)
        return entry

    def _check_resolvable(self, schema_id: int, writer: dict[str, Any],
                          reader: dict[str, Any]) -> None:
        # Resolution errors surface only when decoding; catch name mismatches early.
        if writer.get("name") != reader.get("name"):
            raise IncompatibleSchema(
                f"schema id {schema_id} is record {writer.get('name')!r} but this decoder reads "
                f"{reader.get('name')!r}: the record is on the wrong topic. Dead-letter it.",
                schema_id=schema_id)

    def _unknown_id(self, schema_id: int, size: int, detail: str) -> UnknownSchemaId:
        return UnknownSchemaId(
            f"schema id {schema_id} (record of {size} bytes) is not known to "
            f"{self.registry_hint}: {detail}. The producer used another registry or the schema "
            "was deleted; point FSTREAMS_REGISTRY_URL at the producer's registry, else "
            "dead-letter it.", schema_id=schema_id, size=size)

    @staticmethod
    def _bad_header(data: bytes) -> BadMagicByte:
        if len(data) < HEADER_SIZE:
            return BadMagicByte(
                f"record has {len(data)} bytes ({_preview(data) or 'empty'}), fewer than the "
                "5-byte Confluent header (magic 0x00 + schema id). The producer did not use a "
                "Confluent Avro serializer; dead-letter it and fix the producer.", size=len(data))
        first = data[0]
        hint = " - looks like JSON" if first in b"{[" else ""
        return BadMagicByte(
            f"first byte is 0x{first:02x}{hint}, expected magic byte 0x00 of the Confluent wire "
            f"format ({len(data)} bytes: {_preview(data)}). The producer did not use a Confluent "
            "Avro serializer; dead-letter it and fix the producer.", size=len(data))

    @staticmethod
    def _body_error(data: bytes, schema_id: int, name: str, exc: Exception,
                    position: int) -> DecodeError:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        # fastavro raises EOFError, or IndexError mid-varint, when it runs out of bytes.
        if isinstance(exc, EOFError) or (isinstance(exc, IndexError) and position >= len(data)):
            return TruncatedRecord(
                f"{name} with schema id {schema_id} ended early ({len(data)} bytes; {cause}). "
                "The value was cut off or a length inside it is corrupt; dead-letter it and check "
                "the producer and max.message.bytes.", schema_id=schema_id, size=len(data))
        if "SchemaResolution" in type(exc).__name__:
            return IncompatibleSchema(
                f"schema id {schema_id} ({name}) cannot be read as our schema: {cause}. Register "
                "only compatible versions; dead-letter it.", schema_id=schema_id, size=len(data))
        return CorruptRecord(
            f"{name} with schema id {schema_id} could not be decoded ({len(data)} bytes; {cause}). "
            "The bytes do not match the schema their id names (wrong id or altered payload); "
            "dead-letter it.", schema_id=schema_id, size=len(data))


class WireEncoder:
    """Encode dicts to Confluent-framed Avro under one subject (``<topic>-value``)."""

    def __init__(self, source: SchemaSource, subject: str, schema: str | dict[str, Any], *,
                 auto_register: bool = True, registry_hint: str = "the schema registry") -> None:
        self.source = source
        self.subject = subject
        # Registered exactly as given (with logical types); parsed without them for speed.
        self.schema_text = schema if isinstance(schema, str) else json.dumps(schema)
        self.record_name = _full_name(self.schema_text)
        self.auto_register = auto_register
        self.registry_hint = registry_hint
        self._parsed = parse_for_io(self.schema_text)
        # A writer compiled from the schema when it can be (streams/avro_writer.py), else
        # fastavro's; both write the same bytes.
        self._write = compile_writer(strip_logical_types(json.loads(self.schema_text)))
        self.schema_id: int | None = None
        self._header = b""
        self._buf = BytesIO()

    @classmethod
    def for_topic(cls, source: SchemaSource, topic: str, record_name: str,
                  **kw: Any) -> WireEncoder:
        """TopicNameStrategy: values of ``topic`` go under subject ``<topic>-value``."""
        return cls(source, f"{topic}-value", load_schema_text(record_name), **kw)

    @property
    def parsed_schema(self) -> dict[str, Any]:
        return self._parsed

    def resolve(self) -> int:
        """Register (or look up) the subject once; later calls return the cached id."""
        if self.schema_id is not None:
            return self.schema_id
        if self.auto_register:
            schema_id = self.source.register(self.subject, self.schema_text)
        else:
            try:
                schema_id = self.source.lookup(self.subject, self.schema_text)
            except SchemaNotFound as exc:
                raise self._not_registered(exc) from exc
        self._header = bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")
        buf = BytesIO()
        buf.write(self._header)
        self._buf = buf
        self.schema_id = schema_id
        return schema_id

    def encode(self, record: dict[str, Any]) -> bytes:
        if self.schema_id is None:
            self.resolve()
        if self._write is not None:
            try:
                return self._header + self._write(record)
            except Exception as exc:
                raise self._encode_error(exc) from exc
        buf = self._buf
        buf.seek(HEADER_SIZE)
        buf.truncate()  # keeps the 5-byte header written once by resolve()
        try:
            # Our records never name a union branch with a (type, value) tuple; without the
            # tuple check fastavro resolves nullable fields ~40% faster.
            schemaless_writer(buf, self._parsed, record, disable_tuple_notation=True)
        except Exception as exc:
            raise self._encode_error(exc) from exc
        return buf.getvalue()

    def _encode_error(self, exc: Exception) -> EncodeError:
        return EncodeError(
            f"cannot encode {self.record_name} for subject {self.subject!r}: "
            f"{type(exc).__name__}: {exc}. Validate the record first "
            "(streams.validation.validate) for a precise field path.")

    def _not_registered(self, exc: SchemaNotFound) -> SubjectNotRegistered:
        what = (f"subject {self.subject!r} does not exist" if exc.kind == "subject"
                else f"this version of {self.record_name} is not registered under subject "
                     f"{self.subject!r}")
        return SubjectNotRegistered(
            f"{what} in {self.registry_hint} and auto-registration is off. Register it first: "
            f"POST {{\"schema\": <schemas/{self.record_name.rsplit('.', 1)[-1]}.avsc as a "
            f"string>}} to /subjects/{self.subject}/versions, or produce once with "
            "auto_register=True (CLI: without --no-auto-register).")


class AvroWireCodec(Codec):
    """Faust codec: ``loads`` decodes wire bytes to a dict, ``dumps`` encodes one."""

    def __init__(self, decoder: WireDecoder | None = None, encoder: WireEncoder | None = None,
                 children: tuple[Any, ...] | None = None, **kwargs: Any) -> None:
        super().__init__(children=children, decoder=decoder, encoder=encoder, **kwargs)
        self.decoder = decoder
        self.encoder = encoder

    def _loads(self, s: bytes) -> Any:
        if self.decoder is None:
            raise DecodeError("this avro-wire codec was built without a decoder")
        return self.decoder.decode(s)

    def _dumps(self, s: Any) -> bytes:
        if self.encoder is None:
            raise EncodeError("this avro-wire codec was built without an encoder (no subject)")
        return self.encoder.encode(s)


def register_faust_codec(decoder: WireDecoder | None, encoder: WireEncoder | None = None,
                         name: str = "avro-wire") -> AvroWireCodec:
    """Register a codec under ``name`` for ``value_serializer=name`` on Faust topics.

    Faust codecs are global by name, so use one name per topic that encodes (the decoder side
    can be shared: the schema id travels in every record).
    """
    codec = AvroWireCodec(decoder=decoder, encoder=encoder)
    _register_codec(name, codec)
    return codec
