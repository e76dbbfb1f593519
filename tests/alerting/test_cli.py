"""`fstreams alerts list|silence|silences|expire` on the real broker and registry."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner, Result

from streams.cli import app
from streams.settings import Settings
from tests.alerting.support import alert, produce_alerts

runner = CliRunner()


def _run(settings: Settings, *args: str, registry: bool = False) -> Result:
    conn = ["--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix]
    if registry:
        conn += ["--registry-url", settings.registry_url]
    return runner.invoke(app, ["alerts", *args, *conn])


def _plain(text: str) -> str:
    """Usage errors come boxed and wrapped by rich: compare words, not layout."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def _listed(settings: Settings, *args: str) -> list[dict]:
    result = _run(settings, "list", "--json", *args, registry=True)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_list_shows_latest_state_per_alert_with_filters(alert_settings: Settings) -> None:
    produce_alerts(alert_settings, [
        alert("o-1", warehouse="wms-east"),
        alert("o-2", warehouse="wms-west", rule="delivery_late", severity="warning"),
        alert("o-1", "resolved", warehouse="wms-east"),
        alert("o-3", warehouse="wms-east,wms-north"),
    ])

    everything = _listed(alert_settings)
    assert [(a["order_id"], a["state"]) for a in everything] == [
        ("o-3", "firing"), ("o-2", "firing"), ("o-1", "resolved")]  # firing, critical first
    assert [a["order_id"] for a in _listed(alert_settings, "--state", "firing")] == ["o-3", "o-2"]
    assert [a["order_id"] for a in _listed(alert_settings, "--rule", "delivery_late")] == ["o-2"]
    east = _listed(alert_settings, "--label", "warehouse=wms-east", "--state", "firing")
    assert [a["order_id"] for a in east] == ["o-3"]  # one member of a multi-valued label

    text = _run(alert_settings, "list", registry=True)
    assert text.exit_code == 0, text.output
    assert "FIRING   critical ship_by_breached  firing for" in text.stdout
    assert "runbook: runbooks/delivery_late.md" in text.stdout
    assert "labels: channel=web warehouse=wms-west" in text.stdout
    assert "3 alerts (2 firing, 1 resolved)" in text.stderr


def test_silence_list_and_expire(alert_settings: Settings) -> None:
    produce_alerts(alert_settings, [alert("o-5", warehouse="wms-east")])

    created = _run(alert_settings, "silence", "--match", "warehouse=wms-east", "--match",
                   "rule=~ship_.*", "--duration", "2h", "--comment", "wms-east migration",
                   "--created-by", "oncall-ana")
    assert created.exit_code == 0, created.output
    silence_id = created.stdout.strip()
    assert len(silence_id) == 32

    listed = _run(alert_settings, "silences", "--json")
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entry["silence_id"] == silence_id and entry["state"] == "active"
    assert entry["created_by"] == "oncall-ana" and entry["comment"] == "wms-east migration"
    assert entry["ends_at"] - entry["starts_at"] == 2 * 3_600_000
    assert [a["silenced_by"] for a in _listed(alert_settings)] == [silence_id]
    assert f"[silenced by {silence_id}]" in _run(alert_settings, "list", registry=True).stdout

    expired = _run(alert_settings, "expire", silence_id[:8])
    assert expired.exit_code == 0, expired.output
    assert f"expired {silence_id}" in expired.stdout
    assert _run(alert_settings, "silences", "--state", "all", "--json").stdout == ""
    assert [a["silenced_by"] for a in _listed(alert_settings)] == [None]

    again = _run(alert_settings, "expire", silence_id)
    assert again.exit_code == 1 and "no silence" in again.stderr


def test_bad_input_says_what_to_do(alert_settings: Settings) -> None:
    bad_matcher = _run(alert_settings, "silence", "--match", "warehouse", "--duration", "2h",
                       "--comment", "x")
    assert bad_matcher.exit_code == 2
    assert "expected label=value" in _plain(bad_matcher.output)

    bad_regex = _run(alert_settings, "silence", "--match", "rule=~(", "--duration", "2h",
                     "--comment", "x")
    assert bad_regex.exit_code == 2 and "regex" in _plain(bad_regex.output)

    bad_duration = _run(alert_settings, "silence", "--match", "warehouse=a", "--duration",
                        "2 hours", "--comment", "x")
    assert bad_duration.exit_code == 2 and "'90s', '15m'" in _plain(bad_duration.output)

    no_comment = _run(alert_settings, "silence", "--match", "warehouse=a", "--duration", "1h",
                      "--comment", " ")
    assert no_comment.exit_code == 1 and "comment" in no_comment.stderr

    bad_state = _run(alert_settings, "list", "--state", "pending", registry=True)
    assert bad_state.exit_code == 2
