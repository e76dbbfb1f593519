"""Evaluating SLA rules: per-order state or a windowed metric in, ``Breach`` list out.

    rules = load_rules()                                   # once, at agent start
    # on every event of the order, and when one of its deadlines pops (now = StreamClock.now()):
    breaches = evaluate_order(rules, facts, now_ms, mismatches=open_mismatches)
    to_send = book.observe(order_subject(order_id), breaches, now_ms, silences=silences)
    for deadline_id, due_ms in deadlines_for(rules, facts, now_ms=now_ms):
        deadlines.schedule(deadline_id, due_ms, {"order_id": order_id})
    if (due := book.next_due(silences=silences)) is not None:  # for / hold / repeat / silence
        deadlines.schedule(f"alerts:{order_id}", due, {"order_id": order_id})  # -> book.tick

    # per WindowedMetric record:
    to_send = book.observe(metric_subject(metric), evaluate_metric(rules, metric), now_ms)

Every per-order condition is "something is still missing at a deadline": each kind lists the
*candidates* (an unmet milestone, an open exception, an unrefunded return, ...) with the time
they become breaches, so evaluation and re-evaluation scheduling share one code path and cannot
disagree. Pass the fold's fact store (``tables.fulfillment_facts``) rather than a derived
``FulfillmentState`` when you have it: only facts know orphans (``derive`` gives None) and
individual returns and settlement providers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from string import Template
from typing import Any

from tables.alerts import Breach
from tables.fulfillment_derive import derive
from tables.fulfillment_facts import RECEIVED, REFUNDED
from tables.records import ReconciliationMismatch, WindowedMetric
from tables.sla_rules import Rule

__all__ = [
    "assess",
    "deadlines_for",
    "evaluate_metric",
    "evaluate_order",
    "metric_subject",
    "order_subject",
]

# A metric alert that stops receiving windows is resolved after this many window lengths
# (a warehouse that stops shipping must not keep a page open forever).
STALE_WINDOWS = 2


def order_subject(order_id: str) -> str:
    """Subject key for ``AlertBook.observe`` of everything evaluated on one order."""
    return f"order:{order_id}"


def metric_subject(metric: Mapping[str, Any]) -> str:
    """Subject key of one metric series (name + group), as ``evaluate_metric`` covers it."""
    return f"metric:{metric['name']}:{metric['group_key']}"


@dataclass(slots=True)  # built per evaluation: not frozen, see reconciliation_inputs
class _Return:
    return_id: str | None
    received_at: int | None
    refunded_at: int | None
    rejected: bool


@dataclass
class _OrderView:
    """What the conditions read, from either a fact store or a FulfillmentState."""

    order_id: str
    subject: Mapping[str, Any]  # the fact store or the FulfillmentState it was made from
    fs: Mapping[str, Any] | None  # None: the order itself has not been seen (orphan)
    returns: list[_Return]
    correlation_id: str | None
    first_event_at: int | None = None  # earliest event of an orphan
    exception_starts: dict[str, int] = field(default_factory=dict)  # shipment -> episode start
    mismatches: list[Mapping[str, Any]] = field(default_factory=list)

    @cached_property
    def labels(self) -> dict[str, str]:
        """Routing labels; only a breach reads them, so they are joined only then."""
        subject, fs = self.subject, self.fs
        if "snap" in subject:
            shipments = subject["sh"].values()
            labels = {
                "warehouse": _joined(_latest(sh["wh"]) for sh in shipments),
                "carrier": _joined(_latest(sh["car"]) for sh in shipments),
                "provider": _joined(line[6] for line in subject["st"].values()),
            }
        else:
            labels = {"warehouse": _joined(subject["warehouses"]),
                      "carrier": _joined(subject["carriers"])}
        if fs is not None:
            labels["channel"] = fs["channel"]
        return {k: v for k, v in labels.items() if v}


@dataclass(slots=True)
class _Candidate:
    due_ms: int
    key_labels: dict[str, str]  # identify the alert within the order (shipment_id, return_id)
    fields: dict[str, Any]  # summary placeholders and description lines
    labels: dict[str, str] = field(default_factory=dict)  # routing labels to add
    correlation_id: str | None = None


def _joined(values: Iterable[str | None]) -> str:
    # Multi-valued labels are sorted and comma-joined; silences match any member.
    return ",".join(sorted({v for v in values if v}))


def _latest(fact: list[Any] | None) -> str | None:
    return None if fact is None else fact[-1]


def _view(subject: Mapping[str, Any], mismatches: Iterable[Mapping[str, Any]],
          derived: Mapping[str, Any] | None = None) -> _OrderView:
    is_facts = "snap" in subject
    # The caller may already hold derive(subject): deriving is the costly part.
    fs = derived if is_facts and derived is not None else (
        derive(subject) if is_facts else subject)  # type: ignore[arg-type]
    order_id = subject["order_id"]
    if is_facts:
        returns = [
            _Return(rid, rt["t"][RECEIVED], rt["t"][REFUNDED], rt["rj"] is not None)
            for rid, rt in sorted(subject["rt"].items())
        ]
        last = subject["last"]
        correlation_id = last[2] if last else None
        # Only an open exception reads its episode's start (a scan of the whole timeline).
        exception_starts = (_exception_starts(subject) if fs is not None
                            and fs["open_exceptions"] else {})
    else:
        returns = [
            _Return(
                None, fs["returned_at"], fs["refunded_at"], fs["returns_status"] == "rejected"
            )
        ]
        correlation_id = fs["correlation_id"]
        exception_starts = {}
    if fs is not None:
        correlation_id = fs["correlation_id"]
    view = _OrderView(
        order_id=order_id,
        subject=subject,
        fs=fs,
        returns=returns,
        correlation_id=correlation_id,
        mismatches=[m for m in mismatches if m.get("order_id") == order_id],
        exception_starts=exception_starts,
    )
    if fs is None and is_facts:
        view.first_event_at = _first_event_at(subject)
    return view


def _exception_starts(facts: Mapping[str, Any]) -> dict[str, int]:
    """First exception event of each shipment's current episode (after its latest progress).

    FulfillmentState's ``since`` is the *latest* exception event: a carrier re-scanning
    "exception" every day would push the deadline out, and resolve a page while the parcel
    is still stuck. The timeline keeps the earlier scans (its newest 100 events).
    """
    starts: dict[str, int] = {}
    for t, eid, kind, what, _source, effect in facts["tl"]:
        if kind != "shipment" or what != "exception":
            continue
        shipment_id = effect.removeprefix("shipment ").split(" ", 1)[0]
        progress = facts["sh"].get(shipment_id, {}).get("p")
        if (progress is None or [t, eid] > progress) and shipment_id not in starts:
            starts[shipment_id] = t  # the timeline is sorted: the first hit is the earliest
    return starts


def _first_event_at(facts: Mapping[str, Any]) -> int | None:
    times: list[int] = []
    for sh in facts["sh"].values():
        times += [t for t in (*sh["t"], sh["c"], (sh["x"] or [None])[0]) if t is not None]
    for rt in facts["rt"].values():
        times += [t for t in (*rt["t"], rt["rj"]) if t is not None]
    times += [line[0] for line in facts["st"].values()]
    return min(times, default=None)


# --- condition kinds: view -> candidates (each still unmet, breaching at due_ms) ---


def _milestone_missing(rule: Rule, view: _OrderView) -> Iterator[_Candidate]:
    fs = view.fs
    if fs is None or fs[rule.params["milestone"]] is not None:
        return
    if fs["fulfillment_status"] in rule.params.get("unless_fulfillment_status", ()):
        return
    if any(fs[name] is None for name in rule.params.get("requires", ())):
        return
    if fs[rule.anchor] is not None:
        due = fs[rule.anchor] + rule.after_ms
        yield _Candidate(due, {}, {"milestone": rule.params["milestone"]})


def _exception_open(rule: Rule, view: _OrderView) -> Iterator[_Candidate]:
    for ex in (view.fs or {}).get("open_exceptions", ()):
        shipment_id = ex["shipment_id"]
        since = min(ex["since"], view.exception_starts.get(shipment_id, ex["since"]))
        fields = {"shipment_id": shipment_id, "reason": ex["reason"] or "unspecified"}
        yield _Candidate(since + rule.after_ms, {"shipment_id": shipment_id}, fields)


def _refund_missing(rule: Rule, view: _OrderView) -> Iterator[_Candidate]:
    if view.fs is None:
        return
    for rt in view.returns:
        if rt.received_at is None or rt.refunded_at is not None or rt.rejected:
            continue
        key = {"return_id": rt.return_id} if rt.return_id else {}
        yield _Candidate(rt.received_at + rule.after_ms, key, {"return_id": rt.return_id or "-"})


def _orphan(rule: Rule, view: _OrderView) -> Iterator[_Candidate]:
    if view.fs is None and view.first_event_at is not None:
        yield _Candidate(view.first_event_at + rule.after_ms, {}, {})


def _mismatch_open(rule: Rule, view: _OrderView) -> Iterator[_Candidate]:
    for m in view.mismatches:
        if m["category"] != rule.params["category"] or m["status"] != "open":
            continue
        fields = {"category": m["category"], "difference": m["difference"],
                  "currency": m["currency"]}
        labels = {"provider": m["provider"]} if m.get("provider") else {}
        yield _Candidate(m["detected_at"] + rule.after_ms, {}, fields, labels, m["correlation_id"])


_KINDS: Mapping[str, Callable[[Rule, _OrderView], Iterator[_Candidate]]] = {
    "milestone_missing": _milestone_missing,
    "exception_open": _exception_open,
    "refund_missing": _refund_missing,
    "orphan": _orphan,
    "mismatch_open": _mismatch_open,
}


def _candidates(
    rules: Iterable[Rule], subject: Mapping[str, Any], mismatches: Iterable[Mapping[str, Any]],
    derived: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Rule, _OrderView, _Candidate]]:
    view = _view(subject, mismatches, derived)
    for rule in rules:
        if rule.scope == "order":
            for candidate in _KINDS[rule.kind](rule, view):
                yield rule, view, candidate


def evaluate_order(
    rules: Iterable[Rule],
    state: Mapping[str, Any],
    now_ms: int,
    *,
    mismatches: Iterable[ReconciliationMismatch | Mapping[str, Any]] = (),
) -> list[Breach]:
    """Per-order rules breached at ``now_ms`` (stream time).

    ``state`` is the fold's fact store or a FulfillmentState dict; ``mismatches`` are this
    order's reconciliation mismatches (only open ones of a rule's category count).
    """
    return [
        _order_breach(rule, view, candidate)
        for rule, view, candidate in _candidates(rules, state, list(mismatches))
        if candidate.due_ms <= now_ms
    ]


def assess(
    rules: Iterable[Rule],
    facts: Mapping[str, Any],
    now_ms: int,
    *,
    mismatches: Iterable[ReconciliationMismatch | Mapping[str, Any]] = (),
    derived: Mapping[str, Any] | None = None,
) -> tuple[list[Breach], list[tuple[str, int]]]:
    """``evaluate_order`` and ``deadlines_for(now_ms=now_ms)`` in one pass over the rules, for
    the hot path; ``derived`` is ``derive(facts)`` when the caller already has it."""
    breaches: list[Breach] = []
    ahead: dict[str, int] = {}
    for rule, view, candidate in _candidates(rules, facts, list(mismatches), derived):
        if candidate.due_ms <= now_ms:
            breaches.append(_order_breach(rule, view, candidate))
        else:
            parts = ["sla", view.order_id, rule.name, *candidate.key_labels.values()]
            ahead[":".join(parts)] = candidate.due_ms
    return breaches, sorted(ahead.items(), key=lambda item: (item[1], item[0]))


def deadlines_for(
    rules: Iterable[Rule],
    state: Mapping[str, Any],
    *,
    mismatches: Iterable[ReconciliationMismatch | Mapping[str, Any]] = (),
    now_ms: int | None = None,
) -> list[tuple[str, int]]:
    """``(deadline_id, due_ms)`` at which ``evaluate_order`` may start reporting a breach.

    Ids are stable per (order, rule, shipment/return), so re-scheduling replaces. Pass
    ``now_ms`` to get only deadlines still ahead: scheduling past ones would fire at once and,
    re-scheduled after every re-evaluation, loop.
    """
    found: dict[str, int] = {}
    for rule, view, candidate in _candidates(rules, state, list(mismatches)):
        if now_ms is not None and candidate.due_ms <= now_ms:
            continue
        parts = ["sla", view.order_id, rule.name, *candidate.key_labels.values()]
        found[":".join(parts)] = candidate.due_ms
    return sorted(found.items(), key=lambda item: (item[1], item[0]))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plus(ms: int) -> str:
    if ms == 0:
        return ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f" + {ms // size}{unit}"
    return f" + {ms}ms"


def _order_breach(rule: Rule, view: _OrderView, candidate: _Candidate) -> Breach:
    labels = {k: v for k, v in view.labels.items() if k in rule.labels}
    labels.update({k: v for k, v in candidate.labels.items() if k in rule.labels})
    labels.update(candidate.key_labels)
    fields = {"rule": rule.name, "order_id": view.order_id, "deadline": _iso(candidate.due_ms),
              **labels, **candidate.fields}
    lines = [
        f"Order {view.order_id} breached {rule.name} at {_iso(candidate.due_ms)} "
        f"({rule.anchor}{_plus(rule.after_ms)}).",
        *(f"{k}: {v}" for k, v in sorted(candidate.fields.items())),
    ]
    if view.fs is not None:
        fs = view.fs
        lines.append(
            f"status: fulfillment={fs['fulfillment_status']} returns={fs['returns_status']} "
            f"financial={fs['financial_status']}"
        )
    lines.append(f"Timeline: curl http://127.0.0.1:6066/orders/{view.order_id}/timeline")
    return Breach(
        rule=rule.name,
        severity=rule.severity,
        order_id=view.order_id,
        labels=labels,
        key_labels=tuple(sorted(candidate.key_labels)),
        since_ms=candidate.due_ms,
        summary=Template(rule.summary).safe_substitute(fields),
        description="\n".join(lines),
        correlation_id=candidate.correlation_id or view.correlation_id,
        runbook_url=rule.runbook_url,
        for_ms=rule.for_ms,
        repeat_interval_ms=rule.repeat_interval_ms,
        resolve_hold_ms=rule.resolve_hold_ms,
    )


def evaluate_metric(
    rules: Iterable[Rule], metric: WindowedMetric | Mapping[str, Any]
) -> list[Breach]:
    """Metric rules of ``metric["name"]`` that this window breaches.

    The breach starts at ``window_end`` (when the window's value is known), so ``for = "1h"``
    on hourly windows means two consecutive breaching windows. Windows with fewer than
    ``min_count`` events never breach: 1 exception out of 2 shipments is not a 50% problem.
    """
    breaches = []
    window_ms = metric["window_end"] - metric["window_start"]
    for rule in rules:
        if rule.scope != "metric" or rule.params["metric"] != metric["name"]:
            continue
        if rule.params.get("window_ms", window_ms) != window_ms:
            continue
        value = metric[rule.params["field"]]
        if value is None or metric["count"] < rule.params.get("min_count", 1):
            continue
        if value <= rule.params["threshold"]:
            continue
        breaches.append(_metric_breach(rule, metric, float(value), window_ms))
    return breaches


def _metric_breach(rule: Rule, metric: Mapping[str, Any], value: float, window_ms: int) -> Breach:
    labels = {k: v for k, v in metric["labels"].items() if v}
    fields = {"rule": rule.name, "metric": metric["name"], "field": rule.params["field"],
              "value": f"{value:.4g}", "threshold": f"{rule.params['threshold']:.4g}",
              "window": _plus(window_ms)[3:] or "0s", "count": metric["count"], **labels}
    description = (
        f"{metric['name']} {rule.params['field']} = {value:.4g} {metric.get('unit') or ''} "
        f"over {metric['count']} events in [{_iso(metric['window_start'])}, "
        f"{_iso(metric['window_end'])}); threshold {rule.params['threshold']:.4g}. "
        f"Labels: {', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or 'none'}."
    )
    return Breach(
        rule=rule.name,
        severity=rule.severity,
        order_id=None,
        labels=labels,
        key_labels=tuple(sorted(labels)),
        since_ms=metric["window_end"],
        summary=Template(rule.summary).safe_substitute(fields),
        description=description,
        correlation_id=None,
        runbook_url=rule.runbook_url,
        for_ms=rule.for_ms,
        repeat_interval_ms=rule.repeat_interval_ms,
        resolve_hold_ms=rule.resolve_hold_ms,
        expires_at=metric["window_end"] + STALE_WINDOWS * window_ms,
    )
