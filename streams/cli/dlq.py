"""`fstreams dlq list|show|replay`: inspect and replay the dead-letter topic.

Each command reads the topic from its start to its current end and exits. Filters: --topic
(original topic), --error-class, --stage, --since/--until (ISO-8601 or epoch millis, on
failed_at). Without a reachable registry records are decoded with the local DeadLetter.avsc.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer

from streams.settings import Settings

app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)

_BOOTSTRAP = typer.Option(None, "--bootstrap", "-b",
                          help="Kafka bootstrap servers [env FSTREAMS_BOOTSTRAP_SERVERS]")
_REGISTRY = typer.Option(None, "--registry-url", help="registry URL [env FSTREAMS_REGISTRY_URL]")
_PREFIX = typer.Option(None, "--topic-prefix", help="prefix of all topics")
_TOPIC = typer.Option(None, "--topic", "-t", help="only dead letters from this original topic")
_ERROR = typer.Option(None, "--error-class", "-e", help="only this error class")
_STAGE = typer.Option(None, "--stage", help="only this stage (deserialize, validate, fold, ...)")
_SINCE = typer.Option(None, "--since", help="failed at or after (ISO-8601 or epoch millis)")
_UNTIL = typer.Option(None, "--until", help="failed before (ISO-8601 or epoch millis)")


def _context(bootstrap: str | None, registry_url: str | None,
             topic_prefix: str | None) -> tuple[Settings, Any, Any]:
    from streams.schema_source import RegistrySchemaSource
    from streams.topics import TopicNames

    overrides = {k: v for k, v in {"bootstrap_servers": bootstrap, "registry_url": registry_url,
                                   "topic_prefix": topic_prefix}.items() if v is not None}
    settings = Settings(**overrides)
    return (settings, TopicNames.with_prefix(settings.topic_prefix),
            RegistrySchemaSource.from_settings(settings))


def _millis(value: str | None, option: str) -> int | None:
    from streams.validation import RecordInvalid, parse_timestamp_millis

    if value is None:
        return None
    try:
        return parse_timestamp_millis(int(value) if value.lstrip("-").isdigit() else value,
                                      option)
    except RecordInvalid as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _filters(topic: str | None, error_class: str | None, stage: str | None, since: str | None,
             until: str | None, **extra: Any) -> Any:
    from streams.dlq import DeadLetterFilter

    return DeadLetterFilter(topic=topic, error_class=error_class, stage=stage,
                            since=_millis(since, "--since"), until=_millis(until, "--until"),
                            **extra)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.hex()


@app.command("list")
def list_command(topic: str | None = _TOPIC, error_class: str | None = _ERROR,
                 stage: str | None = _STAGE, since: str | None = _SINCE,
                 until: str | None = _UNTIL,
                 limit: int = typer.Option(100, "--limit", "-n", help="show at most N"),
                 as_json: bool = typer.Option(False, "--json", help="one JSON object a line"),
                 bootstrap: str | None = _BOOTSTRAP, registry_url: str | None = _REGISTRY,
                 topic_prefix: str | None = _PREFIX) -> None:
    """One line per dead letter: where it came from, when and why it failed."""
    from streams.dlq import iter_dead_letters

    settings, names, source = _context(bootstrap, registry_url, topic_prefix)
    flt = _filters(topic, error_class, stage, since, until)
    total = 0
    for entry in iter_dead_letters(settings.bootstrap_servers, names, source, flt):
        total += 1
        if total > limit:
            continue
        r = entry.record
        if as_json:
            typer.echo(json.dumps(_jsonable(entry.partition, entry.offset, r, entry.error)))
        elif r is None:
            typer.echo(f"{entry.partition}:{entry.offset}  <undecodable: {entry.error}>")
        else:
            typer.echo(f"{entry.partition}:{entry.offset}  {_iso(r['failed_at'])}  "
                       f"{r['original_topic']}[{r['original_partition']}]@"
                       f"{r['original_offset']}  key={_text(r['key'])}  {r['stage']}  "
                       f"{r['error_class']}: {r['error_message'][:120]}")
    if not as_json:
        shown = min(total, limit)
        typer.echo(f"{total} dead letters" + (f" (showing {shown})" if shown < total else ""),
                   err=True)


def _jsonable(partition: int, offset: int, r: dict[str, Any] | None,
              error: str | None) -> dict[str, Any]:
    if r is None:
        return {"dlq_partition": partition, "dlq_offset": offset, "error": error}
    out: dict[str, Any] = {"dlq_partition": partition, "dlq_offset": offset, **r}
    out["key"] = _text(r["key"])
    out["value"] = r["value"].hex() if r["value"] is not None else None
    out["headers"] = [{"key": h["key"], "value": _text(h["value"])} for h in r["headers"]]
    out["failed_at_iso"] = _iso(r["failed_at"])
    return out


@app.command("show")
def show_command(offset: int = typer.Argument(..., help="offset in the dead-letter topic"),
                 partition: int | None = typer.Option(
                     None, "--partition", "-p", help="dead-letter partition (default: all)"),
                 bootstrap: str | None = _BOOTSTRAP, registry_url: str | None = _REGISTRY,
                 topic_prefix: str | None = _PREFIX) -> None:
    """Everything about one dead letter, with its value decoded when the schema is known."""
    from streams.dlq import DeadLetterFilter, iter_dead_letters
    from streams.serde import WireDecoder

    settings, names, source = _context(bootstrap, registry_url, topic_prefix)
    flt = DeadLetterFilter(offset=offset, partition=partition)
    decoder = WireDecoder(source, registry_hint=f"the registry at {settings.registry_url}")
    found = 0
    for entry in iter_dead_letters(settings.bootstrap_servers, names, source, flt):
        found += 1
        out = _jsonable(entry.partition, entry.offset, entry.record, entry.error)
        if entry.record is not None and entry.record["value"] is not None:
            try:
                out["value_decoded"] = decoder.decode(entry.record["value"])
            except Exception as exc:  # the reason it was dead-lettered, most likely
                out["value_decoded"] = f"<{type(exc).__name__}: {exc}>"
        typer.echo(json.dumps(out, indent=2, default=str))
    if not found:
        where = f"partition {partition}" if partition is not None else "any partition"
        typer.echo(f"no dead letter at offset {offset} in {where} of {names.dead_letters}",
                   err=True)
        raise typer.Exit(1)


@app.command("replay")
def replay_command(topic: str | None = _TOPIC, error_class: str | None = _ERROR,
                   stage: str | None = _STAGE, since: str | None = _SINCE,
                   until: str | None = _UNTIL,
                   offset: int | None = typer.Option(None, "--offset", help="only this offset"),
                   partition: int | None = typer.Option(None, "--partition", "-p"),
                   to_topic: str | None = typer.Option(
                       None, "--to-topic", help="send to this topic instead of the original"),
                   dry_run: bool = typer.Option(False, "--dry-run", help="count, send nothing"),
                   bootstrap: str | None = _BOOTSTRAP, registry_url: str | None = _REGISTRY,
                   topic_prefix: str | None = _PREFIX) -> None:
    """Re-produce original key, value and headers of matching dead letters."""
    from streams.dlq import replay

    settings, names, source = _context(bootstrap, registry_url, topic_prefix)
    flt = _filters(topic, error_class, stage, since, until, offset=offset, partition=partition)
    summary = replay(settings.bootstrap_servers, names, source, flt, dry_run=dry_run,
                     to_topic=to_topic)
    typer.echo(summary.render())
    if summary.failed:
        raise typer.Exit(1)
