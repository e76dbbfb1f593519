"""Alert lifecycle, Alertmanager-style: breaches in, exactly the SlaAlert records to send out.

One alert per *fingerprint* (rule + identifying labels + order_id, SHA-256). Per fingerprint:

    (absent) --breach--> pending --`for` held--> firing --clear--> resolving --hold--> (absent)
                            |                      ^                 |
                            +--clear--> (absent)   +----breach-------+  (flap: no new page)

* ``firing`` is sent once when the alert starts firing, then again only every
  ``repeat_interval`` while it still fires (0 = never repeat).
* Flapping is damped on the way out: a clear must hold for ``resolve_hold`` before
  ``resolved`` is sent; a breach returning within the hold keeps the one open page.
  (``for`` damps the way in, but per-order rules already wait for their deadline.)
* A silenced alert is recorded here (``silenced_by``) but not sent; if it still fires when
  the silence ends it is sent then. A ``resolved`` is sent for every ``firing`` that was
  sent, silenced or not, so no page is left open.
* A pending alert that clears, or a silenced one never sent, disappears without a record.

Everything is stream time passed in by the caller; the book's state is JSON-able.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tables.records import SlaAlert

__all__ = [
    "AlertBook",
    "Breach",
    "Matcher",
    "Silence",
    "alertmanager_payload",
    "fingerprint",
    "is_silenced",
    "matching_silence",
    "pagerduty_payload",
]


@dataclass(frozen=True)
class Breach:
    """One rule breached for one subject, as ``tables.sla`` reports it."""

    rule: str
    severity: str
    order_id: str | None
    labels: Mapping[str, str]  # routing and identifying labels, as sent
    key_labels: tuple[str, ...]  # the labels that identify the alert (go into the fingerprint)
    since_ms: int  # when the condition started to hold (the deadline, the window end)
    summary: str
    description: str
    correlation_id: str | None
    runbook_url: str
    for_ms: int = 0
    repeat_interval_ms: int = 0
    resolve_hold_ms: int = 0
    expires_at: int | None = None  # treat as cleared at this time unless observed again

    @property
    def fingerprint(self) -> str:
        identity = {name: self.labels[name] for name in self.key_labels if name in self.labels}
        return fingerprint(self.rule, identity, self.order_id)


def fingerprint(rule: str, labels: Mapping[str, str], order_id: str | None = None) -> str:
    """Stable across processes and restarts (unlike ``hash()``): 16 hex chars of SHA-256.

    Per-order breaches pass only labels that cannot change during the order's life
    (shipment_id, return_id): warehouse or carrier grow as shipments appear, and a
    fingerprint that moved with them would page twice for one problem.
    """
    canonical = json.dumps(
        {"rule": rule, "labels": dict(sorted(labels.items())), "order_id": order_id},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- silences ---

_OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    """``label op value``; ``rule``, ``severity`` and ``order_id`` match like labels.

    ``=`` also matches one member of a comma-joined multi-valued label (warehouse "a,b"),
    so "silence warehouse wms-east" covers orders split across it. Regexes match the whole
    value, as in Alertmanager. A missing label has the value "".
    """

    label: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"matcher op {self.op!r} not one of {_OPS}")
        if self.op in ("=~", "!~"):
            try:  # fail when the silence is created, not when an alert is checked
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher regex {self.value!r}: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op in ("=", "!="):
            equal = actual == self.value or self.value in actual.split(",")
            return equal if self.op == "=" else not equal
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Silence:
    """Mute alerts whose labels match every matcher, for ``starts_at <= now < ends_at``."""

    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    created_by: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher (it would mute everything)")
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")

    def active(self, now_ms: int) -> bool:
        return self.starts_at <= now_ms < self.ends_at


def _match_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    labels = dict(alert.get("labels") or {})
    labels.update(rule=alert["rule"], severity=alert["severity"])
    labels["order_id"] = alert.get("order_id") or ""
    return labels


def matching_silence(
    alert: Mapping[str, Any], silences: Iterable[Silence], now_ms: int
) -> Silence | None:
    """The first active silence muting ``alert`` (an SlaAlert dict), or None."""
    labels = _match_labels(alert)
    for silence in silences:
        if silence.active(now_ms) and all(m.matches(labels) for m in silence.matchers):
            return silence
    return None


def is_silenced(alert: Mapping[str, Any], silences: Iterable[Silence], now_ms: int) -> bool:
    return matching_silence(alert, silences, now_ms) is not None


# --- the book ---


class AlertBook:
    """Open alerts by fingerprint. ``observe``/``tick`` return the SlaAlert records to send.

    A book may hold one order's alerts (kept in the order's table row) or many; ``tick``
    walks every entry, so per-key books keep it cheap.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}

    def observe(
        self,
        subject: str,
        breaches: Iterable[Breach],
        now_ms: int,
        *,
        silences: Sequence[Silence] = (),
    ) -> list[SlaAlert]:
        """Report the complete set of current breaches of ``subject`` (an order, a metric).

        Alerts of ``subject`` not in ``breaches`` have cleared. Call on every re-evaluation;
        nothing is re-sent unless the lifecycle says so.
        """
        current: dict[str, Breach] = {b.fingerprint: b for b in breaches}
        for fp, breach in current.items():
            entry = self._entries.get(fp)
            if entry is None:
                self._entries[fp] = _new_entry(fp, subject, breach)
            else:
                _refresh(entry, breach)
        for fp, entry in self._entries.items():
            if entry["subject"] == subject and fp not in current:
                _clear(entry, now_ms)
        return self._advance([fp for fp, e in self._entries.items() if e["subject"] == subject],
                             now_ms, silences)

    def tick(self, now_ms: int, *, silences: Sequence[Silence] = ()) -> list[SlaAlert]:
        """Advance time only: `for` elapsed, resolve hold over, repeat due, silence ended."""
        return self._advance(list(self._entries), now_ms, silences)

    def next_due(self, *, silences: Sequence[Silence] = ()) -> int | None:
        """When ``tick`` may next have something to do (schedule it with ``Deadlines``)."""
        times = [t for e in self._entries.values() if (t := _due(e, silences)) is not None]
        return min(times, default=None)

    def active(self) -> list[dict[str, Any]]:
        """Open alerts with lifecycle fields (status, silenced_by, sent_at), for listing."""
        return [dict(e) for _fp, e in sorted(self._entries.items())]

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> dict[str, Any]:
        return {"alerts": [dict(e) for _fp, e in sorted(self._entries.items())]}

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any]) -> AlertBook:
        book = cls()
        for entry in snapshot.get("alerts", ()):
            book._entries[entry["fingerprint"]] = dict(entry)
        return book

    def _advance(
        self, fps: list[str], now_ms: int, silences: Sequence[Silence]
    ) -> list[SlaAlert]:
        out: list[SlaAlert] = []
        for fp in sorted(fps):
            entry = self._entries[fp]
            if _step(entry, now_ms, silences, out):
                del self._entries[fp]
        return out


def _new_entry(fp: str, subject: str, breach: Breach) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "fingerprint": fp,
        "subject": subject,
        "rule": breach.rule,
        "starts_at": breach.since_ms,
        "status": "pending",
        "sent_at": None,  # last time a firing record was sent; None = never
        "cleared_at": None,
        "silenced_by": None,
    }
    _refresh(entry, breach)
    return entry


def _refresh(entry: dict[str, Any], breach: Breach) -> None:
    # Latest wording, labels and policy (rules may be reloaded), never a new start: the page
    # is about the first breach.
    entry.update(
        severity=breach.severity,
        for_ms=breach.for_ms,
        repeat_interval_ms=breach.repeat_interval_ms,
        resolve_hold_ms=breach.resolve_hold_ms,
        labels=dict(breach.labels),
        order_id=breach.order_id,
        correlation_id=breach.correlation_id,
        summary=breach.summary,
        description=breach.description,
        runbook_url=breach.runbook_url,
        expires_at=breach.expires_at,
    )
    if entry["status"] == "resolving":  # flapped back before the hold ran out
        entry["status"], entry["cleared_at"] = "firing", None


def _clear(entry: dict[str, Any], at_ms: int) -> None:
    if entry["status"] != "resolving":
        entry["status"], entry["cleared_at"] = "resolving", at_ms


def _step(
    entry: dict[str, Any], now_ms: int, silences: Sequence[Silence], out: list[SlaAlert]
) -> bool:
    """Move one entry forward to ``now_ms``, appending records to send; True = forget it."""
    expires_at = entry.get("expires_at")
    if entry["status"] != "resolving" and expires_at is not None and now_ms >= expires_at:
        _clear(entry, expires_at)
    if entry["status"] == "pending":
        if now_ms < entry["starts_at"] + entry["for_ms"]:
            return False
        entry["status"] = "firing"
    if entry["status"] == "resolving":
        if entry["sent_at"] is None and entry["cleared_at"] is not None:
            return True  # never sent (pending or silenced throughout): nothing to close
        if now_ms < entry["cleared_at"] + entry["resolve_hold_ms"]:
            return False
        out.append(_record(entry, "resolved"))
        return True
    silence = matching_silence(_record(entry, "firing"), silences, now_ms)
    entry["silenced_by"] = silence.silence_id if silence else None
    if silence is None and (entry["sent_at"] is None or _repeat_due(entry, now_ms)):
        entry["sent_at"] = now_ms
        out.append(_record(entry, "firing"))
    return False


def _repeat_due(entry: Mapping[str, Any], now_ms: int) -> bool:
    interval = entry["repeat_interval_ms"]
    return interval > 0 and entry["sent_at"] is not None and now_ms >= entry["sent_at"] + interval


def _due(entry: Mapping[str, Any], silences: Sequence[Silence]) -> int | None:
    times: list[int] = []
    if entry.get("expires_at") is not None and entry["status"] != "resolving":
        times.append(entry["expires_at"])
    if entry["status"] == "pending":
        times.append(entry["starts_at"] + entry["for_ms"])
    elif entry["status"] == "resolving":
        times.append(entry["cleared_at"] + entry["resolve_hold_ms"])
    else:
        if entry["sent_at"] is not None and entry["repeat_interval_ms"] > 0:
            times.append(entry["sent_at"] + entry["repeat_interval_ms"])
        muting = [s for s in silences if s.silence_id == entry["silenced_by"]]
        times += [s.ends_at for s in muting]
    return min(times, default=None)


def _record(entry: Mapping[str, Any], state: str) -> SlaAlert:
    resolved = state == "resolved"
    return {
        "fingerprint": entry["fingerprint"],
        "rule": entry["rule"],
        "severity": entry["severity"],
        "state": state,  # type: ignore[typeddict-item]
        "starts_at": entry["starts_at"],
        "ends_at": entry["cleared_at"] if resolved else None,
        "summary": entry["summary"],
        "description": entry["description"],
        "labels": dict(entry["labels"]),
        "order_id": entry["order_id"],
        "correlation_id": entry["correlation_id"],
        "runbook_url": entry["runbook_url"],
    }


# --- webhook payloads (pure shapes; delivery is elsewhere) ---

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end time"


def _rfc3339(ms: int | None) -> str:
    if ms is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _alert_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    labels = {"alertname": alert["rule"], "severity": alert["severity"], **alert["labels"]}
    if alert.get("order_id"):
        labels["order_id"] = alert["order_id"]
    return labels


def alertmanager_payload(
    alert: Mapping[str, Any],
    *,
    receiver: str = "fulfillment-oncall",
    external_url: str = "",
) -> dict[str, Any]:
    """Alertmanager webhook (version 4) body carrying one SlaAlert, grouped by fingerprint."""
    labels = _alert_labels(alert)
    annotations = {
        "summary": alert["summary"],
        "description": alert["description"],
        "runbook_url": alert["runbook_url"],
    }
    if alert.get("correlation_id"):
        annotations["correlation_id"] = alert["correlation_id"]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{fingerprint="{alert["fingerprint"]}"}}',
        "truncatedAlerts": 0,
        "status": alert["state"],
        "receiver": receiver,
        "groupLabels": {"alertname": alert["rule"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [
            {
                "status": alert["state"],
                "labels": labels,
                "annotations": annotations,
                "startsAt": _rfc3339(alert["starts_at"]),
                "endsAt": _rfc3339(alert.get("ends_at")),
                "generatorURL": "",
                "fingerprint": alert["fingerprint"],
            }
        ],
    }


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
_PD_SUMMARY_MAX = 1024  # Events API v2 limit


def pagerduty_payload(
    alert: Mapping[str, Any], *, routing_key: str, source: str = "fulfillment-streams"
) -> dict[str, Any]:
    """PagerDuty Events API v2 body: ``trigger`` for firing, ``resolve`` for resolved.

    ``dedup_key`` is the fingerprint, so a repeat trigger updates the same incident and the
    resolve closes it.
    """
    if alert["state"] == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve",
                "dedup_key": alert["fingerprint"]}
    labels = _alert_labels(alert)
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert["fingerprint"],
        "client": source,
        "payload": {
            "summary": alert["summary"][:_PD_SUMMARY_MAX],
            "source": source,
            "severity": _PD_SEVERITY.get(alert["severity"], "error"),
            "timestamp": _rfc3339(alert["starts_at"]),
            "component": alert["labels"].get("warehouse", "fulfillment"),
            "group": alert["labels"].get("channel", "fulfillment"),
            "class": alert["rule"],
            "custom_details": {
                "description": alert["description"],
                "labels": labels,
                "order_id": alert.get("order_id"),
                "correlation_id": alert.get("correlation_id"),
            },
        },
        "links": [{"href": alert["runbook_url"], "text": "Runbook"}],
    }
