"""Dead letters: park records that cannot be processed, list them, replay them.

Writing: ``DeadLetterSink.send(...)`` builds a ``fulfillment.v1.DeadLetter`` and produces it to
the dead-letter topic keyed by the original key. The DeadLetter schema id is obtained once at
construction, so dead-lettering keeps working when the registry goes down later.

Reading: the topic is read from its low to its high watermark per partition (assign, no group
commit) so listing and replay terminate. Replay re-produces the original key, value and headers
to the original topic.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.delivery_reports import failure
from streams.logs import LogBudget
from streams.producer import producer_config
from streams.schema_source import RegistryUnavailable, SchemaSource
from streams.serde import DecodeError, WireDecoder, WireEncoder
from streams.topic_reader import read_to_end
from streams.topics import TopicNames
from tables.schema_files import load_schema_text

log = logging.getLogger(__name__)
RawHeaders = Mapping[str, Any] | list[tuple[str, Any]] | None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _header_list(headers: RawHeaders) -> list[dict[str, Any]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for k, v in items:
        if isinstance(v, str):
            v = v.encode()
        out.append({"key": k.decode() if isinstance(k, bytes) else str(k),
                    "value": None if v is None else bytes(v)})
    return out


# A reason that quotes a huge field would double the dead letter's size and push it past the
# message size limit; the original bytes are kept whole, the reason is cut.
MAX_REASON_CHARS = 2_000
# Dead letters carry whole originals plus their reason: allow up to the embedded broker's
# 8 MiB (the dead-letter topic is created with the same max.message.bytes).
MAX_DEAD_LETTER_BYTES = 8 * 1024 * 1024


def _error_fields(exc: BaseException | str) -> tuple[str, str]:
    if isinstance(exc, BaseException):
        name, message = type(exc).__name__, str(exc) or repr(exc)
    else:
        name, message = str(exc)[:200], str(exc)
    if len(message) > MAX_REASON_CHARS:
        message = f"{message[:MAX_REASON_CHARS]}... ({len(message)} characters, cut)"
    return name, message


class DeadLetterSink:
    """Produce DeadLetter records (sync; agents call ``send`` and ``flush`` periodically)."""

    def __init__(self, bootstrap: str, source: SchemaSource, *, names: TopicNames | None = None,
                 topic: str | None = None, worker_id: str | None = None,
                 auto_register: bool = True, config: dict[str, Any] | None = None) -> None:
        self.topic = topic or (names or TopicNames()).dead_letters
        self.worker_id = worker_id
        self.encoder = WireEncoder(source, f"{self.topic}-value", load_schema_text("DeadLetter"),
                                   auto_register=auto_register)
        self.encoder.resolve()  # now, while the registry is up; send() never needs it again
        conf = {"client.id": "fstreams-dlq", "linger.ms": 20,
                "message.max.bytes": MAX_DEAD_LETTER_BYTES, "compression.type": "lz4"}
        conf.update(config or {})
        self.producer = Producer(producer_config(bootstrap, conf))
        self.sent = 0
        self.errors: list[str] = []
        # One line per dead letter, but a flood of bad input must not become a flood of logs.
        self.log_budget = LogBudget(lines=20, window_s=1.0)

    def build(self, topic: str, partition: int, offset: int, key: bytes | None,
              value: bytes | None, headers: RawHeaders, exc: BaseException | str, stage: str,
              *, timestamp: int | None = None) -> dict[str, Any]:
        """The DeadLetter record ``send`` would produce."""
        error_class, message = _error_fields(exc)
        return {
            "original_topic": topic,
            "original_partition": int(partition),
            "original_offset": int(offset),
            "original_timestamp": timestamp,
            "key": None if key is None else bytes(key),
            "value": None if value is None else bytes(value),
            "headers": _header_list(headers),
            "error_class": error_class,
            "error_message": message,
            "stage": stage,
            "failed_at": _now_ms(),
            "worker_id": self.worker_id,
        }

    def send(self, topic: str, partition: int, offset: int, key: bytes | None,
             value: bytes | None, headers: RawHeaders, exc: BaseException | str, stage: str,
             *, timestamp: int | None = None, correlation_id: str | None = None) -> None:
        """Queue a dead letter; ``exc`` is the exception (or a validator rule name).
        ``correlation_id`` (when the record could be read) goes to the log line only."""
        record = self.build(topic, partition, offset, key, value, headers, exc, stage,
                            timestamp=timestamp)
        self._log(record, correlation_id)
        payload = self.encoder.encode(record)
        while True:
            try:
                self.producer.produce(self.topic, value=payload, key=record["key"],
                                      on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.5)
        self.producer.poll(0)

    def _log(self, record: dict[str, Any], correlation_id: str | None) -> None:
        skipped = self.log_budget.allow()
        if skipped is None:
            return
        key = record["key"]
        log.warning("dead-lettered: %s", record["error_message"][:300], extra={
            "order_id": None if key is None else key[:200].decode(errors="replace"),
            "correlation_id": correlation_id,
            "topic": record["original_topic"], "partition": record["original_partition"],
            "offset": record["original_offset"], "stage": record["stage"],
            "error_class": record["error_class"], "dead_letter_topic": self.topic,
            **({"unlogged_before": skipped} if skipped else {})})

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        reason = failure(err, msg)
        if reason is None:
            self.sent += 1
        else:
            self.errors.append(reason)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for queued dead letters; returns how many are still undelivered."""
        return int(self.producer.flush(timeout))

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> DeadLetterSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading side ---


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to list or replay; None matches everything. Times are epoch millis."""

    topic: str | None = None
    error_class: str | None = None
    stage: str | None = None
    since: int | None = None  # failed_at >= since
    until: int | None = None  # failed_at < until
    partition: int | None = None  # of the dead-letter topic
    offset: int | None = None  # of the dead-letter topic

    def matches(self, entry: DeadLetterEntry) -> bool:
        if (self.partition is not None and entry.partition != self.partition) or (
                self.offset is not None and entry.offset != self.offset):
            return False
        r = entry.record
        if r is None:  # undecodable: shown only when no field filter is asked for
            return all(x is None for x in (self.topic, self.error_class, self.stage,
                                           self.since, self.until))
        return ((self.topic is None or r["original_topic"] == self.topic)
                and (self.error_class is None or r["error_class"] == self.error_class)
                and (self.stage is None or r["stage"] == self.stage)
                and (self.since is None or r["failed_at"] >= self.since)
                and (self.until is None or r["failed_at"] < self.until))


@dataclass
class DeadLetterEntry:
    partition: int
    offset: int
    record: dict[str, Any] | None
    error: str | None = None  # why ``record`` is None


class _LocalFallback:
    """Registry first; when it is unreachable, assume the writer used our DeadLetter.avsc.

    Safe enough for a read-only tool: a different writer schema shows up as CorruptRecord.
    """

    def __init__(self, primary: SchemaSource | None) -> None:
        self.primary = primary
        self.text = load_schema_text("DeadLetter")

    def schema_by_id(self, schema_id: int) -> str:
        if self.primary is None:
            return self.text
        try:
            return self.primary.schema_by_id(schema_id)
        except RegistryUnavailable:
            return self.text

    def register(self, subject: str, schema: str) -> int:
        raise NotImplementedError

    def lookup(self, subject: str, schema: str) -> int:
        raise NotImplementedError


def _dead_letter_topic(names: TopicNames | str) -> str:
    return names if isinstance(names, str) else names.dead_letters


def iter_dead_letters(bootstrap: str, names: TopicNames | str, source: SchemaSource | None = None,
                      filters: DeadLetterFilter | None = None, *,
                      timeout_s: float = 10.0) -> Iterator[DeadLetterEntry]:
    """Dead letters from the start of the topic to its current end, filtered.

    ``names`` is the product's TopicNames (or the dead-letter topic name itself); ``source`` the
    registry (None: decode with the local DeadLetter.avsc).
    """
    topic = _dead_letter_topic(names)
    flt = filters or DeadLetterFilter()
    decoder = WireDecoder.for_record(_LocalFallback(source), "DeadLetter")
    for msg in read_to_end(bootstrap, topic, timeout_s=timeout_s, partition=flt.partition):
        entry = _entry(decoder, msg.partition() or 0, msg.offset() or 0, msg.value())
        if flt.matches(entry):
            yield entry


def _entry(decoder: WireDecoder, partition: int, offset: int,
           value: bytes | None) -> DeadLetterEntry:
    if value is None:
        return DeadLetterEntry(partition, offset, None, "empty value (tombstone)")
    try:
        return DeadLetterEntry(partition, offset, decoder.decode(value))
    except (DecodeError, RegistryUnavailable) as exc:
        return DeadLetterEntry(partition, offset, None, f"{type(exc).__name__}: {exc}")


@dataclass
class ReplaySummary:
    dry_run: bool
    matched: int = 0
    replayed: int = 0
    failed: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def render(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        per_topic = ", ".join(f"{t}: {n}" for t, n in sorted(self.by_topic.items())) or "-"
        done = self.matched if self.dry_run else self.replayed
        text = f"matched {self.matched}, {verb} {done} ({per_topic}), failed {self.failed}"
        return "\n".join([text, *self.errors[:20]])


def replay(bootstrap: str, names: TopicNames | str, source: SchemaSource | None = None,
           filters: DeadLetterFilter | None = None, *, dry_run: bool = False,
           to_topic: str | None = None, config: dict[str, Any] | None = None,
           timeout_s: float = 30.0) -> ReplaySummary:
    """Re-produce matching dead letters' original key/value/headers to their original topic."""
    summary = ReplaySummary(dry_run=dry_run)
    producer = None if dry_run else Producer(producer_config(
        bootstrap, {"client.id": "fstreams-dlq-replay", **(config or {})}))

    def delivered(err: KafkaError | None, msg: Message) -> None:
        reason = failure(err, msg)
        if reason is None:
            summary.replayed += 1
        else:  # replaying again is safe: consumers drop what they already have by event id
            summary.failed += 1
            summary.errors.append(reason)

    for entry in iter_dead_letters(bootstrap, names, source, filters):
        record = entry.record
        if record is None:
            continue
        target = to_topic or record["original_topic"]
        summary.matched += 1
        summary.by_topic[target] += 1
        if producer is None:
            continue
        headers = [(h["key"], h["value"]) for h in record["headers"]]
        while True:
            try:
                producer.produce(target, key=record["key"], value=record["value"],
                                 headers=headers or None, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    if producer is not None:
        left = producer.flush(timeout_s)
        if left:
            summary.failed += left
            summary.errors.append(f"{left} records undelivered after {timeout_s}s")
    return summary
