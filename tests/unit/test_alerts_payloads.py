"""Webhook bodies built from SlaAlert records: Alertmanager (v4) and PagerDuty Events v2."""

from __future__ import annotations

from typing import Any

from tables.alerts import alertmanager_payload, pagerduty_payload

from .events import HOUR, T0

FIRING: dict[str, Any] = {
    "fingerprint": "218a6b5a77d7f465",
    "rule": "ship_by_breached",
    "severity": "critical",
    "state": "firing",
    "starts_at": T0,
    "ends_at": None,
    "summary": "Order o-1 (web) not fully shipped by its promised ship-by",
    "description": "details",
    "labels": {"channel": "web", "warehouse": "wms-east"},
    "order_id": "o-1",
    "correlation_id": "corr-1",
    "runbook_url": "runbooks/ship_by_breached.md",
}
RESOLVED = {**FIRING, "state": "resolved", "ends_at": T0 + HOUR}


def test_alertmanager_firing() -> None:
    body = alertmanager_payload(FIRING, receiver="oncall", external_url="http://fs")
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["receiver"] == "oncall" and body["externalURL"] == "http://fs"
    assert body["groupLabels"] == {"alertname": "ship_by_breached"}
    [alert] = body["alerts"]
    assert alert["labels"] == {"alertname": "ship_by_breached", "severity": "critical",
                               "channel": "web", "warehouse": "wms-east", "order_id": "o-1"}
    assert alert["annotations"]["runbook_url"] == "runbooks/ship_by_breached.md"
    assert alert["annotations"]["summary"] == FIRING["summary"]
    assert alert["startsAt"] == "2025-11-23T12:13:20.000Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == FIRING["fingerprint"]
    assert body["commonLabels"] == alert["labels"]


def test_alertmanager_resolved_carries_the_end() -> None:
    body = alertmanager_payload(RESOLVED)
    assert body["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2025-11-23T13:13:20.000Z"


def test_pagerduty_trigger() -> None:
    body = pagerduty_payload(FIRING, routing_key="R0UT1NG")
    assert body["event_action"] == "trigger"
    assert body["routing_key"] == "R0UT1NG" and body["dedup_key"] == FIRING["fingerprint"]
    payload = body["payload"]
    assert payload["summary"] == FIRING["summary"]
    assert payload["severity"] == "critical" and payload["source"] == "fulfillment-streams"
    assert payload["timestamp"] == "2025-11-23T12:13:20.000Z"
    assert payload["class"] == "ship_by_breached" and payload["component"] == "wms-east"
    assert payload["custom_details"]["order_id"] == "o-1"
    assert body["links"] == [{"href": "runbooks/ship_by_breached.md", "text": "Runbook"}]


def test_pagerduty_resolve_is_minimal_and_dedups_on_the_fingerprint() -> None:
    assert pagerduty_payload(RESOLVED, routing_key="R") == {
        "routing_key": "R", "event_action": "resolve", "dedup_key": FIRING["fingerprint"],
    }


def test_pagerduty_summary_is_capped() -> None:
    long = {**FIRING, "summary": "x" * 5000, "severity": "unknown"}
    payload = pagerduty_payload(long, routing_key="R")["payload"]
    assert len(payload["summary"]) == 1024 and payload["severity"] == "error"
