"""`fstreams produce <topic> --file events.jsonl`: JSON Lines in, Confluent Avro out.

Every line is validated against the topic's schema (ISO-8601 or epoch-millis timestamps,
defaults filled) before anything is encoded; bad lines are reported with their line number and
reason and do not stop the run. Exit code 0: everything sent; 1: something was rejected;
2: could not run (unknown topic, file, registry or broker unreachable).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import typer

from streams.settings import Settings

EXIT_OK, EXIT_REJECTED, EXIT_FATAL = 0, 1, 2


@dataclass
class ProduceSummary:
    topic: str
    dry_run: bool
    lines: int = 0
    valid: int = 0
    sent: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def render(self, limit: int = 50) -> str:
        head = (f"{self.topic}: {self.lines} lines, {self.valid} valid, {len(self.rejected)} "
                "rejected (dry run: nothing sent)" if self.dry_run else
                f"{self.topic}: {self.lines} lines, sent {self.sent}, "
                f"rejected {len(self.rejected)}")
        rows = [f"  line {n}: {reason}" for n, reason in sorted(self.rejected)[:limit]]
        if len(self.rejected) > limit:
            rows.append(f"  ... and {len(self.rejected) - limit} more")
        return "\n".join([head, *rows])


def parse_json_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, object or None, error) per non-blank line; numbering starts at 1."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        if not isinstance(obj, dict):
            yield number, None, f"expected a JSON object, got {type(obj).__name__}"
            continue
        yield number, obj, ""


class _Progress:
    def __init__(self, every: int, stream: IO[str]) -> None:
        self.every = every
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0

    def tick(self, summary: ProduceSummary) -> None:
        now = time.monotonic()
        on_tty = self.tty and now - self.last > 0.2
        if on_tty or (self.every and summary.lines % self.every == 0):
            self.last = now
            end = "\r" if self.tty else "\n"
            print(f"... {summary.lines} lines, {summary.valid} valid, "
                  f"{len(summary.rejected)} rejected", end=end, file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty:
            print(" " * 60, end="\r", file=self.stream, flush=True)


def run_produce(lines: Iterable[str], topic: str, record_name: str, producer: Any | None, *,
                progress: _Progress | None = None) -> ProduceSummary:
    """Validate every line and, unless ``producer`` is None (dry run), send it."""
    from streams.validation import RecordInvalid, validator_for

    validator = validator_for(record_name, coerce=True)
    summary = ProduceSummary(topic=topic, dry_run=producer is None)

    def on_delivery(number: int) -> Any:
        def callback(err: Any, _msg: Any) -> None:
            if err is None:
                summary.sent += 1
            else:
                summary.rejected.append((number, f"delivery failed: {err.str()}"))
        return callback

    for number, obj, error in parse_json_lines(lines):
        summary.lines = number
        if obj is None:
            summary.rejected.append((number, error))
        else:
            try:
                record = validator.validate(obj)
            except RecordInvalid as exc:
                summary.rejected.append((number, str(exc)))
            else:
                summary.valid += 1
                if producer is not None:
                    producer.send(topic, record, record_name=record_name,
                                  on_delivery=on_delivery(number))
        if progress is not None:
            progress.tick(summary)
    if progress is not None:
        progress.done()
    return summary


def produce_command(
    topic: str = typer.Argument(..., help="orders|shipments|returns|settlements (or full name)"),
    file: str = typer.Option(..., "--file", "-f", help="JSON Lines file; '-' reads stdin"),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", "-b", help="Kafka bootstrap servers [env FSTREAMS_BOOTSTRAP_SERVERS]"),
    registry_url: str | None = typer.Option(
        None, "--registry-url", help="schema registry URL [env FSTREAMS_REGISTRY_URL]"),
    topic_prefix: str | None = typer.Option(None, "--topic-prefix", help="prefix of all topics"),
    record: str | None = typer.Option(
        None, "--record", help="record name (e.g. OrderEvent) for a topic outside the product"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate only; needs no broker"),
    auto_register: bool = typer.Option(
        True, "--auto-register/--no-auto-register",
        help="register the subject if missing (off: it must already exist)"),
    progress_every: int = typer.Option(10_000, "--progress-every", help="progress every N lines"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds to wait for deliveries"),
) -> None:
    """Validate JSON Lines against the topic's Avro schema and produce them (key: order_id)."""
    from streams.producer import EventProducer, UnknownTopic, resolve_topic
    from streams.schema_source import RegistrySchemaSource, SchemaSourceError
    from streams.serde import SerdeError
    from streams.topics import TopicNames

    overrides = {k: v for k, v in {"bootstrap_servers": bootstrap, "registry_url": registry_url,
                                   "topic_prefix": topic_prefix}.items() if v is not None}
    settings = Settings(**overrides)
    names = TopicNames.with_prefix(settings.topic_prefix)
    try:
        full_topic, record_name = (topic, record) if record else resolve_topic(topic, names)
    except UnknownTopic as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FATAL) from None
    try:
        stream: IO[str] = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(EXIT_FATAL) from None

    progress = _Progress(progress_every, sys.stderr)
    producer = None
    try:
        if not dry_run:
            source = RegistrySchemaSource.from_settings(settings)
            producer = EventProducer(
                settings.bootstrap_servers, source, names=names, auto_register=auto_register,
                validate=False,  # run_produce validates (and reports line numbers) itself
                registry_hint=f"the registry at {settings.registry_url}",
                config={"message.timeout.ms": int(timeout * 1000), "client.id": "fstreams-produce"})
        summary = run_produce(stream, full_topic, record_name, producer, progress=progress)
        if producer is not None:
            left = producer.flush(timeout)
            if left:
                typer.echo(f"error: {left} records not acknowledged within {timeout}s", err=True)
    except (SchemaSourceError, SerdeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FATAL) from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    typer.echo(summary.render())
    if summary.rejected or (not dry_run and summary.sent != summary.valid):
        raise typer.Exit(EXIT_REJECTED)
