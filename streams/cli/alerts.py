"""`fstreams alerts list|silence|silences|expire|deliver`: what pages, what is muted, delivery.

`list` reads sla-alerts from start to end and shows the latest record per alert; silences
live in the compacted `<prefix>alert-silences` topic; `deliver` runs the webhook delivery
consumer until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import json
import os
import time
from enum import StrEnum
from typing import Any

import typer

from streams.settings import Settings

app = typer.Typer(help="List SLA alerts, silence them, and deliver them to webhooks.",
                  no_args_is_help=True)

# Help texts say (env ...) in parentheses: square brackets would be read as rich markup.
_BOOTSTRAP = typer.Option(None, "--bootstrap", "-b",
                          help="Kafka bootstrap servers (env FSTREAMS_BOOTSTRAP_SERVERS)")
_REGISTRY = typer.Option(None, "--registry-url", help="registry URL (env FSTREAMS_REGISTRY_URL)")
_PREFIX = typer.Option(None, "--topic-prefix", help="prefix of all topics "
                       "(env FSTREAMS_TOPIC_PREFIX)")
_JSON = typer.Option(False, "--json", help="one JSON object a line")


class AlertState(StrEnum):
    firing = "firing"
    resolved = "resolved"


class SilenceState(StrEnum):
    active = "active"
    pending = "pending"
    expired = "expired"
    all = "all"


def _settings(bootstrap: str | None, registry_url: str | None = None,
              topic_prefix: str | None = None, log_level: str | None = None) -> Settings:
    overrides = {k: v for k, v in {"bootstrap_servers": bootstrap, "registry_url": registry_url,
                                   "topic_prefix": topic_prefix,
                                   "log_level": log_level.upper() if log_level else None,
                                   }.items() if v is not None}
    return Settings(**overrides)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _matchers(texts: list[str], option: str) -> list[Any]:
    from streams.alerting.silences import SilenceError, parse_matcher

    try:
        return [parse_matcher(t) for t in texts]
    except SilenceError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _iso(ms: int | None) -> str:
    from datetime import UTC, datetime

    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


_ALERT_STATE = typer.Option(None, "--state", "-s", help="only firing or only resolved alerts")
_LABEL = typer.Option([], "--label", "-l", help="only alerts matching label=value (repeatable; "
                      "also !=, =~, !~; rule, severity and order_id count as labels)")


@app.command("list")
def list_command(
    state: AlertState | None = _ALERT_STATE,
    rule: str | None = typer.Option(None, "--rule", "-r", help="only this rule"),
    label: list[str] = _LABEL,
    as_json: bool = _JSON,
    bootstrap: str | None = _BOOTSTRAP, registry_url: str | None = _REGISTRY,
    topic_prefix: str | None = _PREFIX,
) -> None:
    """The latest state of every SLA alert: severity, age, labels, order, summary, runbook."""
    from streams.alerting.listing import AlertFilter, latest_alerts, select
    from streams.alerting.silences import list_silences
    from streams.schema_source import RegistrySchemaSource
    from streams.topics import TopicNames

    flt = AlertFilter(state=state.value if state else None, rule=rule,
                      matchers=_matchers(label, "--label"))
    settings = _settings(bootstrap, registry_url, topic_prefix)
    topic = TopicNames.with_prefix(settings.topic_prefix).sla_alerts
    alerts, undecodable = latest_alerts(settings.bootstrap_servers, topic,
                                        RegistrySchemaSource.from_settings(settings))
    now = _now_ms()
    shown = select(alerts, flt, list_silences(settings, state="active", at_ms=now), now)
    for alert in shown:
        typer.echo(json.dumps(alert) if as_json else _render(alert, now))
    if not as_json:
        firing = sum(a["state"] == "firing" for a in shown)
        typer.echo(f"{len(shown)} alerts ({firing} firing, {len(shown) - firing} resolved) "
                   f"in {topic}", err=True)
    if undecodable:
        typer.echo(f"warning: {undecodable} records of {topic} could not be decoded "
                   "(see `fstreams dlq list` and the registry)", err=True)


def _render(alert: dict[str, Any], now: int) -> str:
    from streams.alerting.listing import age

    if alert["state"] == "firing":
        when = f"firing for {age(now - alert['starts_at'])}"
    else:
        ended = alert.get("ends_at") or alert["starts_at"]
        when = f"resolved {age(now - ended)} ago after {age(ended - alert['starts_at'])}"
    muted = f"  [silenced by {alert['silenced_by']}]" if alert.get("silenced_by") else ""
    labels = " ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items())) or "-"
    return "\n".join([
        f"{alert['state'].upper():<8} {alert['severity']:<8} {alert['rule']}  {when}  "
        f"order {alert.get('order_id') or '-'}{muted}",
        f"    {alert['summary']}",
        f"    labels: {labels}",
        f"    runbook: {alert['runbook_url']}   fingerprint: {alert['fingerprint']}",
    ])


_MATCH = typer.Option(..., "--match", "-m", help="label=value the alerts must match "
                      "(repeatable, all must match); also !=, =~ regex, !~; rule, severity, "
                      "order_id count as labels. Example: --match warehouse=wms-east "
                      "--match rule=~ship_.*")


@app.command("silence")
def silence_command(
    match: list[str] = _MATCH,
    duration: str = typer.Option(..., "--duration", "-d",
                                 help="how long, e.g. 30m, 2h, 1d"),
    comment: str = typer.Option(..., "--comment", "-c",
                                help="why (incident, ticket): the next on-call reads it"),
    created_by: str = typer.Option(os.environ.get("USER", ""), "--created-by",
                                   help="who silenced (default: $USER)"),
    bootstrap: str | None = _BOOTSTRAP, topic_prefix: str | None = _PREFIX,
) -> None:
    """Mute matching alerts for a while; prints the silence id (for `alerts expire`)."""
    from streams.alerting.silences import SilenceError, create_silence
    from tables.sla_rules import RuleError, parse_duration

    matchers = _matchers(match, "--match")
    try:
        duration_ms = parse_duration(duration)
    except RuleError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration") from None
    try:
        silence = create_silence(_settings(bootstrap, topic_prefix=topic_prefix), matchers,
                                 duration_ms, comment=comment, created_by=created_by)
    except SilenceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(silence.silence_id)
    typer.echo(f"silenced {_matcher_text(silence.matchers)} until {_iso(silence.ends_at)}",
               err=True)


def _matcher_text(matchers: Any) -> str:
    return ",".join(f"{m.label}{m.op}{m.value}" for m in matchers)


_SILENCE_STATE = typer.Option(SilenceState.active, "--state", "-s",
                               help="active now, pending (start later), expired, all")


@app.command("silences")
def silences_command(
    state: SilenceState = _SILENCE_STATE,
    as_json: bool = _JSON,
    bootstrap: str | None = _BOOTSTRAP, topic_prefix: str | None = _PREFIX,
) -> None:
    """Silences: id, matchers, until when, who and why."""
    from dataclasses import asdict

    from streams.alerting.silences import list_silences, silence_state

    now = _now_ms()
    found = list_silences(_settings(bootstrap, topic_prefix=topic_prefix), state=state.value,
                          at_ms=now)
    for s in found:
        if as_json:
            typer.echo(json.dumps({**asdict(s), "state": silence_state(s, now)}))
        else:
            typer.echo(f"{s.silence_id}  {silence_state(s, now):<7}  "
                       f"{_iso(s.starts_at)} .. {_iso(s.ends_at)}  "
                       f"{_matcher_text(s.matchers)}  by {s.created_by or '-'}: {s.comment}")
    if not as_json:
        typer.echo(f"{len(found)} silences ({state.value})", err=True)


@app.command("expire")
def expire_command(
    silence_id: str = typer.Argument(..., help="id printed by `alerts silence` (or a unique "
                                     "prefix of at least 6 characters)"),
    bootstrap: str | None = _BOOTSTRAP, topic_prefix: str | None = _PREFIX,
) -> None:
    """End a silence now: its alerts page again (a still-firing one on its next record)."""
    from streams.alerting.silences import SilenceError, expire_silence

    try:
        silence = expire_silence(_settings(bootstrap, topic_prefix=topic_prefix), silence_id)
    except SilenceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"expired {silence.silence_id} ({_matcher_text(silence.matchers)})")


_AM_URL = typer.Option([], "--alertmanager-url", help="Alertmanager-style webhook (repeatable; "
                       "env FSTREAMS_ALERTING_ALERTMANAGER_URLS, comma-separated)")
_PD_URL = typer.Option([], "--pagerduty-url", help="PagerDuty Events v2 URL (repeatable; env "
                       "FSTREAMS_ALERTING_PAGERDUTY_URLS). The routing key comes only from env "
                       "FSTREAMS_ALERTING_PAGERDUTY_ROUTING_KEY, to keep it out of shell history")


@app.command("deliver")
def deliver_command(
    alertmanager_url: list[str] = _AM_URL,
    pagerduty_url: list[str] = _PD_URL,
    log_level: str | None = typer.Option(None, "--loglevel", "-l", help="DEBUG|INFO|WARNING"),
    bootstrap: str | None = _BOOTSTRAP, registry_url: str | None = _REGISTRY,
    topic_prefix: str | None = _PREFIX,
) -> None:
    """Deliver alert records to webhook receivers until Ctrl-C / SIGTERM.

    Each receiver has its own consumer group, retries with backoff and a circuit breaker.

    Silenced alerts are skipped; silences are re-read every few seconds.

    Retry limits and more: env FSTREAMS_ALERTING_* (streams/alerting/config.py).
    """
    import asyncio

    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from streams.alerting.config import AlertingConfig
    from streams.alerting.delivery import NoReceivers
    from streams.logs import configure

    overrides: dict[str, Any] = {}
    if alertmanager_url:
        overrides["alertmanager_urls"] = alertmanager_url
    if pagerduty_url:
        overrides["pagerduty_urls"] = pagerduty_url
    try:
        settings = _settings(bootstrap, registry_url, topic_prefix, log_level)
        config = AlertingConfig(**overrides)
        configure(settings.log_level, settings.log_format)
        asyncio.run(_deliver_until_signal(settings, config))
    except ValidationError as exc:  # one line per problem, without pydantic's trailer
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            typer.echo(f"error: {where}: {problem['msg']}", err=True)
        raise typer.Exit(2) from None
    except NoReceivers as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KafkaError as exc:
        typer.echo(f"error: Kafka at {settings.bootstrap_servers}: {exc}. Is the broker up? "
                   "(fstreams broker status)", err=True)
        raise typer.Exit(1) from None


async def _deliver_until_signal(settings: Settings, config: Any) -> None:
    import asyncio
    import signal

    from streams.alerting.delivery import run_delivery

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_delivery(settings, config, stop)
