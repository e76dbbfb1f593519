"""What is on fire: the latest ``sla-alerts`` record per fingerprint, filtered and sorted.

An alert's records share a key (its order or fingerprint), so they share a partition and the
last one read is the latest. Without a reachable registry records are decoded with the local
SlaAlert.avsc (a read-only tool should still work while the registry is down).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.schema_source import RegistryUnavailable, SchemaSource
from streams.serde import DecodeError, WireDecoder
from streams.topic_reader import read_to_end
from tables.alerts import Matcher, Silence, matching_silence
from tables.schema_files import load_schema_text

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class _RegistryOrLocal:
    def __init__(self, primary: SchemaSource) -> None:
        self.primary = primary

    def schema_by_id(self, schema_id: int) -> str:
        try:
            return self.primary.schema_by_id(schema_id)
        except RegistryUnavailable:
            return load_schema_text("SlaAlert")

    def register(self, subject: str, schema: str) -> int:
        raise NotImplementedError

    def lookup(self, subject: str, schema: str) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class AlertFilter:
    state: str | None = None
    rule: str | None = None
    matchers: Sequence[Matcher] = ()

    def matches(self, alert: Mapping[str, Any]) -> bool:
        if (self.state and alert["state"] != self.state) or (
                self.rule and alert["rule"] != self.rule):
            return False
        labels = match_labels(alert)
        return all(m.matches(labels) for m in self.matchers)


def match_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """Labels as silences see them: the alert's, plus rule, severity and order_id."""
    return {**alert.get("labels", {}), "rule": alert["rule"], "severity": alert["severity"],
            "order_id": alert.get("order_id") or ""}


def latest_alerts(bootstrap: str, topic: str, source: SchemaSource) -> tuple[
        list[dict[str, Any]], int]:
    """(latest record per fingerprint, how many records could not be decoded)."""
    decoder = WireDecoder.for_record(_RegistryOrLocal(source), "SlaAlert")
    latest: dict[str, dict[str, Any]] = {}
    undecodable = 0
    for msg in read_to_end(bootstrap, topic):
        value = msg.value()
        if value is None:
            continue
        try:
            alert = decoder.decode(value)
        except DecodeError:
            undecodable += 1
            continue
        alert["received_at"] = msg.timestamp()[1]
        latest[alert["fingerprint"]] = alert
    return list(latest.values()), undecodable


def select(alerts: Iterable[dict[str, Any]], flt: AlertFilter, silences: Sequence[Silence],
           now_ms: int) -> list[dict[str, Any]]:
    """Matching alerts, firing first, then by severity and age (oldest first), each with
    ``silenced_by`` (the id of the silence muting it now, if it fires)."""
    return [with_silence(a, silences, now_ms) for a in ordered(a for a in alerts
                                                               if flt.matches(a))]


def ordered(alerts: Iterable[dict[str, Any]], *, newest_first: bool = False
            ) -> list[dict[str, Any]]:
    """Firing first, then by severity, then by age (oldest first, or newest first for a
    console); the alerts themselves, not copies, so a caller showing a page of many marks
    silences (``with_silence``) on that page only."""
    age_order = -1 if newest_first else 1
    return sorted(alerts, key=lambda a: (a["state"] != "firing",
                                         _SEVERITY_ORDER.get(a["severity"], 9),
                                         age_order * a["starts_at"], a["fingerprint"]))


def with_silence(alert: dict[str, Any], silences: Sequence[Silence], now_ms: int
                 ) -> dict[str, Any]:
    """A copy of ``alert`` with ``silenced_by``: the silence muting it now, if it fires."""
    muting = matching_silence(alert, silences, now_ms) if alert["state"] == "firing" else None
    return {**alert, "silenced_by": muting.silence_id if muting else None}


def age(ms: int) -> str:
    """3725000 -> '1h2m': short, and exact enough for a page."""
    seconds = max(0, ms // 1000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
