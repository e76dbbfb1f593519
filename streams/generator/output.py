"""Where generated events go: a JSON Lines file, a truth file, or Kafka (fast or paced)."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from streams.generator.emit import GeneratedEvent
from streams.generator.truth import Truth

Progress = Callable[[str], None]


def event_line(ev: GeneratedEvent) -> dict[str, Any]:
    """One JSONL object: {"topic", "key", "value"}; raw bad records carry "raw" (base64)."""
    line: dict[str, Any] = {"topic": ev.topic, "key": ev.key, "value": ev.value}
    if ev.raw is not None:
        line["raw"] = base64.b64encode(ev.raw).decode()
    return line


def write_jsonl(events: Iterable[GeneratedEvent], out: IO[str], *, rate: float | None = None,
                progress: Progress | None = None) -> int:
    """Write one line per event; with ``rate`` paced and flushed per line (``tail -f``)."""
    pacer = Pacer(None, rate, progress) if rate else None
    n = 0
    for ev in events:
        out.write(json.dumps(event_line(ev), separators=(",", ":")))
        out.write("\n")
        n += 1
        if pacer is not None:
            out.flush()
            pacer.tick()
    return n


def write_truth(truth: Truth, path: Path) -> None:
    # Indented while a person might read it; compact for benchmark-sized runs.
    indent = 1 if len(truth.orders) <= 5_000 else None
    path.write_text(json.dumps(truth.to_json(), indent=indent) + "\n", encoding="utf-8")


class Pacer:
    """Holds a loop to ``rate`` iterations per second (None = as fast as possible) and reports
    progress every ``every_s`` seconds."""

    def __init__(self, total: int | None, rate: float | None, progress: Progress | None,
                 every_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.total, self.rate, self.progress, self.every_s = total, rate, progress, every_s
        self.clock, self.sleep = clock, sleep
        self.started = clock()
        self.last_report = self.started
        self.done = 0

    def tick(self) -> None:
        self.done += 1
        now = self.clock()
        if self.rate:
            due = self.started + self.done / self.rate
            if due > now:
                self.sleep(due - now)
                now = due
        if self.progress and now - self.last_report >= self.every_s:
            self.last_report = now
            self.report(now)

    def report(self, now: float | None = None) -> None:
        if not self.progress:
            return
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        of = f"/{self.total} ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        self.progress(f"sent {self.done}{of} events, {self.done / elapsed:.0f} ev/s, "
                      f"{elapsed:.0f}s elapsed")


def stderr_progress(line: str) -> None:
    print(f"[generate] {line}", file=sys.stderr, flush=True)


def produce_to_kafka(events: Iterable[GeneratedEvent], *, bootstrap: str, registry_url: str,
                     topic_prefix: str = "", partitions: int | None = None,
                     rate: float | None = None, progress: Progress | None = None,
                     total: int | None = None) -> int:
    """Send every event through the project's producer SDK; returns the number delivered.

    Valid events and duplicates go through ``EventProducer.send`` (Confluent wire format; a
    duplicate encodes to the same bytes). The producer's per-record validation is off: the
    generator's records are complete and schema-valid by construction (tests/generator checks
    every one with fastavro) and validation would halve the send rate. Semantically bad records
    are encoded as they are and raw garbage goes out byte for byte.
    """
    from streams.producer import EventProducer, record_key
    from streams.schema_source import RegistrySchemaSource
    from streams.topics import TopicNames, ensure_topics

    names = TopicNames.with_prefix(topic_prefix)
    if partitions:
        ensure_topics(bootstrap, names, partitions)
    source = RegistrySchemaSource(registry_url)
    pacer = Pacer(total, rate, progress)
    with EventProducer(bootstrap, source, names=names, validate=False) as producer:
        for ev in events:
            topic = getattr(names, ev.topic)
            key = ev.key.encode() if ev.key is not None else None
            if ev.raw is not None:
                producer.produce_raw(topic, key, ev.raw)
            elif ev.is_bad:
                assert ev.value is not None
                name = producer.record_name(topic, None)
                value = producer.encoder(topic, name).encode(ev.value)
                producer.produce_raw(topic, key or record_key(name, ev.value), value)
            else:
                assert ev.value is not None
                producer.send(topic, ev.value, key=key)
            pacer.tick()
        producer.flush()
        pacer.report()
        if producer.errors:
            raise producer.errors[0]
        return producer.delivered
