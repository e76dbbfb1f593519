"""The query side of the alert and mismatch projection: parse parameters, filter, sort, sum.

Pure (no broker, no HTTP): ``streams/web/alerts.py`` and ``streams/web/mismatches.py`` hand
over the request's query and the projection's records; every bad parameter raises
``BadQuery`` with a message saying what to send instead. Alert filtering, ordering and
silence marking reuse ``streams.alerting.listing`` (as ``fstreams alerts list`` does; silences
are checked for the returned page only), label matchers reuse the silence matcher syntax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from streams.alerting.listing import AlertFilter, ordered, with_silence
from streams.alerting.silences import SilenceError, parse_matcher
from tables.alerts import Silence
from tables.reconciliation_rules import CATEGORIES

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
ALERT_STATES = ("firing", "resolved")
MISMATCH_STATUSES = ("open", "resolved")
_ALERT_PARAMS = ("state", "rule", "label", "order_id", "correlation_id", "limit")
_MISMATCH_PARAMS = ("category", "status", "provider", "order_id", "correlation_id", "limit")


class BadQuery(ValueError):
    """A query parameter the endpoint cannot use; the message says which and why."""


@dataclass(frozen=True)
class AlertQuery:
    filter: AlertFilter
    order_id: str | None = None
    correlation_id: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class MismatchQuery:
    category: str | None = None
    status: str | None = None
    provider: str | None = None
    order_id: str | None = None
    correlation_id: str | None = None
    limit: int = DEFAULT_LIMIT


def _check_names(query: MultiMapping[str], known: Sequence[str], repeatable: Sequence[str] = ()
                 ) -> None:
    for name in set(query.keys()):
        if name not in known:
            raise BadQuery(f"unknown parameter {name!r}; known: {', '.join(known)}")
        if name not in repeatable and len(query.getall(name)) > 1:
            raise BadQuery(f"parameter {name!r} given more than once")


def _one_of(query: MultiMapping[str], name: str, allowed: Sequence[str]) -> str | None:
    value = _text(query, name)
    if value is not None and value not in allowed:
        raise BadQuery(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _text(query: MultiMapping[str], name: str) -> str | None:
    """The parameter's value; absent and empty both mean "no filter"."""
    return query.get(name) or None


def _limit(query: MultiMapping[str]) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}"
                       ) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def parse_alert_query(query: MultiMapping[str]) -> AlertQuery:
    """state (firing|resolved), rule, label (repeatable matcher, e.g. warehouse=wms-east;
    also !=, =~, !~; rule, severity and order_id count as labels), order_id, correlation_id
    (exact), limit."""
    _check_names(query, _ALERT_PARAMS, repeatable=("label",))
    matchers = []
    for text in query.getall("label", []):
        try:
            matchers.append(parse_matcher(text))
        except SilenceError as exc:
            raise BadQuery(f"label: {exc}") from None
    flt = AlertFilter(state=_one_of(query, "state", ALERT_STATES), rule=_text(query, "rule"),
                      matchers=tuple(matchers))
    return AlertQuery(filter=flt, order_id=_text(query, "order_id"),
                      correlation_id=_text(query, "correlation_id"), limit=_limit(query))


def parse_mismatch_query(query: MultiMapping[str]) -> MismatchQuery:
    """category (one of the reconciliation categories), status (open|resolved), provider,
    order_id, correlation_id (exact), limit."""
    _check_names(query, _MISMATCH_PARAMS)
    return MismatchQuery(category=_one_of(query, "category", CATEGORIES),
                         status=_one_of(query, "status", MISMATCH_STATUSES),
                         provider=_text(query, "provider"), order_id=_text(query, "order_id"),
                         correlation_id=_text(query, "correlation_id"), limit=_limit(query))


def _same(record: Mapping[str, Any], field: str, wanted: str | None) -> bool:
    return wanted is None or record.get(field) == wanted


def list_alerts(alerts: Iterable[dict[str, Any]], q: AlertQuery, silences: Sequence[Silence],
                now_ms: int) -> dict[str, Any]:
    """``{"alerts", "count", "matched"}``: firing first, then by severity, newest first; each
    alert with ``silenced_by``. ``matched`` counts every match, ``count`` the ones returned."""
    found = ordered((a for a in alerts if _same(a, "order_id", q.order_id)
                     and _same(a, "correlation_id", q.correlation_id) and q.filter.matches(a)),
                    newest_first=True)
    shown = [with_silence(a, silences, now_ms) for a in found[:q.limit]]
    return {"alerts": shown, "count": len(shown), "matched": len(found)}


def list_mismatches(mismatches: Iterable[dict[str, Any]], q: MismatchQuery) -> dict[str, Any]:
    """``{"mismatches", "count", "matched", "totals"}``: open first, then newest first.
    ``totals`` sums ``difference`` (minor units) per currency and category over every match,
    not only the ones returned."""
    found = [dict(m) for m in mismatches
             if _same(m, "category", q.category) and _same(m, "status", q.status)
             and _same(m, "provider", q.provider) and _same(m, "order_id", q.order_id)
             and _same(m, "correlation_id", q.correlation_id)]
    found.sort(key=lambda m: (m["status"] != "open",
                              -(m["resolved_at"] if m.get("resolved_at") is not None
                                else m["detected_at"]), m["mismatch_id"]))
    totals: dict[str, dict[str, int]] = {}
    for m in found:
        by_category = totals.setdefault(m["currency"], {})
        by_category[m["category"]] = by_category.get(m["category"], 0) + m["difference"]
    shown = found[:q.limit]
    return {"mismatches": shown, "count": len(shown), "matched": len(found), "totals": totals}


__all__ = [
    "ALERT_STATES",
    "MISMATCH_STATUSES",
    "AlertQuery",
    "BadQuery",
    "MismatchQuery",
    "list_alerts",
    "list_mismatches",
    "parse_alert_query",
    "parse_mismatch_query",
]
