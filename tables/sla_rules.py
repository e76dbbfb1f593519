"""SLA rules as declared in ``runbooks/rules.toml``: loading and validation (stdlib only).

A rule names a *condition kind* implemented in ``tables.sla`` and parameterises it from TOML;
nothing in the file is evaluated as code. Everything is checked at load time so that a typo
fails the deploy instead of silently never paging. Durations are strings such as ``"90s"``,
``"15m"``, ``"24h"`` or ``"3d"``; all times are stream (event) time in epoch millis.

Severity is the ``AlertSeverity`` enum of ``schemas/SlaAlert.avsc``: ``critical`` pages the
on-call, ``warning`` opens a ticket, ``info`` is recorded only.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "CONDITION_KINDS",
    "DEFAULT_RULES_PATH",
    "LABELS",
    "SEVERITIES",
    "SUMMARY_FIELDS",
    "Rule",
    "RuleError",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "runbooks" / "rules.toml"

SEVERITIES = ("critical", "warning", "info")  # AlertSeverity minus its reader-side "unknown"

# Routing labels a per-order rule may copy from the state (metric rules take the metric's).
LABELS = ("channel", "warehouse", "carrier", "provider")

# Timestamp fields of FulfillmentState a milestone rule may wait for or count from.
STATE_TIMES = (
    "accepted_at",
    "allocated_at",
    "first_shipped_at",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
    "returned_at",
    "refunded_at",
    "promised_ship_by",
    "promised_deliver_by",
)

# kind -> (scope, anchors the deadline may count from, condition parameters: name -> type).
CONDITION_KINDS: Mapping[str, tuple[str, tuple[str, ...], Mapping[str, type]]] = MappingProxyType(
    {
        "milestone_missing": (
            "order",
            STATE_TIMES,
            {"milestone": str, "requires": list, "unless_fulfillment_status": list},
        ),
        "exception_open": ("order", ("exception_since",), {}),
        "refund_missing": ("order", ("return_received",), {}),
        "orphan": ("order", ("first_event",), {}),
        "mismatch_open": ("order", ("detected_at",), {"category": str}),
        "metric_above": (
            "metric",
            (),
            {"metric": str, "field": str, "threshold": float, "min_count": int, "window": str},
        ),
    }
)
_REQUIRED_PARAMS = {
    "milestone_missing": ("milestone",),
    "mismatch_open": ("category",),
    "metric_above": ("metric", "field", "threshold"),
}
METRIC_FIELDS = ("value", "p50", "p95", "p99")

# Placeholders a summary template may use (``${order_id}``); see ``tables.sla`` for values.
SUMMARY_FIELDS = frozenset(
    {
        "rule", "order_id", "deadline", "milestone", "shipment_id", "reason", "return_id",
        "category", "difference", "currency", "metric", "field", "value", "threshold",
        "window", "count", *LABELS,
    }
)

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RULE_KEYS = frozenset(
    {"name", "severity", "summary", "condition", "deadline", "for", "labels", "runbook",
     "repeat_interval", "resolve_hold"}
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RuleError(ValueError):
    """The rules file is invalid; the message names the rule and the offending key."""


def parse_duration(text: str) -> int:
    """``"15m"`` -> 900000. Only whole numbers with one unit, so a value reads unambiguously."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise RuleError(f"bad duration {text!r}: expected e.g. '90s', '15m', '24h', '3d'")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True)
class Rule:
    """One validated rule. ``params`` are the condition's parameters, durations in ms."""

    name: str
    severity: str
    kind: str
    scope: str  # "order" (per-order state) or "metric" (a WindowedMetric)
    summary: str
    runbook: str  # path relative to the repository root, e.g. runbooks/delivery_late.md
    runbook_url: str
    labels: tuple[str, ...]
    anchor: str | None  # what the deadline counts from (None for metric rules)
    after_ms: int  # deadline = anchor + after_ms
    for_ms: int  # the breach must hold this long before the first notification
    repeat_interval_ms: int  # re-notify a still-firing alert this often; 0 = never
    resolve_hold_ms: int  # the condition must stay clear this long before `resolved`
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Read and validate the rules file (default ``runbooks/rules.toml``)."""
    rules_path = Path(path) if path is not None else DEFAULT_RULES_PATH
    with rules_path.open("rb") as fh:
        document = tomllib.load(fh)
    return parse_rules(document)


def parse_rules(document: Mapping[str, Any]) -> list[Rule]:
    """Validate an already parsed TOML document (tests build them inline)."""
    unknown = set(document) - {"defaults", "rules"}
    if unknown:
        raise RuleError(f"unknown top-level keys {sorted(unknown)}")
    defaults = dict(document.get("defaults", {}))
    base_url = str(defaults.pop("runbook_base_url", ""))
    bad_defaults = set(defaults) - {"for", "repeat_interval", "resolve_hold"}
    if bad_defaults:
        raise RuleError(f"unknown [defaults] keys {sorted(bad_defaults)}")
    rules = [_parse_rule(raw, defaults, base_url) for raw in document.get("rules", [])]
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuleError(f"duplicate rule names {duplicates}")
    if not rules:
        raise RuleError("no [[rules]] declared")
    return rules


def _parse_rule(raw: Mapping[str, Any], defaults: Mapping[str, Any], base_url: str) -> Rule:
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError(f"rule name {name!r} must be snake_case")

    def fail(message: str) -> RuleError:
        return RuleError(f"rule {name}: {message}")

    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}")
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        raise fail(f"severity {severity!r} not one of {SEVERITIES}")
    condition = dict(raw.get("condition") or {})
    kind = condition.pop("kind", None)
    if kind not in CONDITION_KINDS:
        raise fail(f"condition kind {kind!r} not one of {sorted(CONDITION_KINDS)}")
    scope, anchors, param_types = CONDITION_KINDS[kind]
    params = _check_params(kind, condition, param_types, fail)
    anchor, after_ms = _check_deadline(raw.get("deadline"), scope, anchors, fail)

    labels = raw.get("labels", [])
    if scope == "order" and (not isinstance(labels, list) or set(labels) - set(LABELS)):
        raise fail(f"labels {labels!r} must be a list drawn from {LABELS}")
    if scope == "metric" and labels:
        raise fail("metric rules take their labels from the metric; drop `labels`")
    summary = raw.get("summary")
    if not isinstance(summary, str) or not summary:
        raise fail("summary is required")
    placeholders = set(string.Template(summary).get_identifiers())
    if placeholders - SUMMARY_FIELDS:
        raise fail(f"summary uses unknown placeholders {sorted(placeholders - SUMMARY_FIELDS)}")
    runbook = raw.get("runbook")
    if not isinstance(runbook, str) or not re.match(r"^runbooks/[a-z0-9_]+\.md$", runbook):
        raise fail(f"runbook {runbook!r} must be a path like runbooks/<name>.md")

    def duration(key: str, fallback: str) -> int:
        try:
            return parse_duration(raw.get(key, defaults.get(key, fallback)))
        except RuleError as exc:
            raise fail(f"{key}: {exc}") from None

    return Rule(
        name=name,
        severity=severity,
        kind=kind,
        scope=scope,
        summary=summary,
        runbook=runbook,
        runbook_url=base_url + runbook,
        labels=tuple(labels),
        anchor=anchor,
        after_ms=after_ms,
        for_ms=duration("for", "0s"),
        repeat_interval_ms=duration("repeat_interval", "0s"),
        resolve_hold_ms=duration("resolve_hold", "0s"),
        params=MappingProxyType(params),
    )


def _check_params(kind: str, given: dict[str, Any], types: Mapping[str, type], fail: Any) -> dict:
    unknown = set(given) - set(types)
    if unknown:
        raise fail(f"condition {kind} has unknown parameters {sorted(unknown)}")
    missing = [p for p in _REQUIRED_PARAMS.get(kind, ()) if p not in given]
    if missing:
        raise fail(f"condition {kind} needs {missing}")
    params: dict[str, Any] = {}
    for key, value in given.items():
        expected = types[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise fail(f"condition parameter {key} must be {expected.__name__}")
        params[key] = tuple(value) if isinstance(value, list) else value
    if kind == "milestone_missing":
        fields = (params["milestone"], *params.get("requires", ()))
        bad = [f for f in fields if f not in STATE_TIMES]
        if bad:
            raise fail(f"{bad} are not timestamp fields of FulfillmentState {STATE_TIMES}")
    if kind == "metric_above":
        if params["field"] not in METRIC_FIELDS:
            raise fail(f"metric field {params['field']!r} not one of {METRIC_FIELDS}")
        if "window" in params:
            params["window_ms"] = parse_duration(params.pop("window"))
    return params


def _check_deadline(
    deadline: Any, scope: str, anchors: tuple[str, ...], fail: Any
) -> tuple[str | None, int]:
    if scope == "metric":
        if deadline is not None:
            raise fail("metric rules have no deadline (use `for`)")
        return None, 0
    if not isinstance(deadline, dict) or set(deadline) - {"from", "after"}:
        raise fail("deadline must be a table {from = ..., after = ...}")
    anchor = deadline.get("from")
    if anchor not in anchors:
        raise fail(f"deadline from {anchor!r} not one of {anchors}")
    try:
        return anchor, parse_duration(deadline.get("after", "0s"))
    except RuleError as exc:
        raise fail(f"deadline after: {exc}") from None
