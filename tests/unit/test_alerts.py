"""Alert lifecycle on a controlled stream clock: one page per problem, then one resolve."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest

from tables import schema_files
from tables.alerts import AlertBook, Breach, Matcher, Silence, fingerprint, is_silenced
from tables.fulfillment import new_state, step
from tables.sla import evaluate_order, order_subject
from tables.sla_rules import load_rules

from .events import DAY, HOUR, MIN, T0, kind_of, order, shipment

SUBJECT = "order:o-1"
HOLD = 10 * MIN
REPEAT = 4 * HOUR
SLA_ALERT = fastavro.parse_schema(schema_files.load_schema("SlaAlert"))


def breach(rule: str = "ship_by_breached", since: int = T0, **kw: Any) -> Breach:
    fields: dict[str, Any] = {
        "rule": rule, "severity": "critical", "order_id": "o-1",
        "labels": {"channel": "web", "warehouse": "wms-east"}, "key_labels": (),
        "since_ms": since, "summary": "Order o-1 not shipped", "description": "details",
        "correlation_id": "corr-1", "runbook_url": f"runbooks/{rule}.md",
        "repeat_interval_ms": REPEAT, "resolve_hold_ms": HOLD,
    }
    fields.update(kw)
    return Breach(**fields)


def states(records: list[dict[str, Any]]) -> list[str]:
    return [r["state"] for r in records]


def test_fires_once_and_is_not_resent_per_event() -> None:
    book = AlertBook()
    [alert] = book.observe(SUBJECT, [breach()], T0)
    assert alert["state"] == "firing" and alert["starts_at"] == T0 and alert["ends_at"] is None
    assert fastavro.validation.validate(alert, SLA_ALERT)
    for minute in range(1, 60):
        assert book.observe(SUBJECT, [breach()], T0 + minute * MIN) == []
    assert book.tick(T0 + HOUR) == []


def test_resolves_after_the_hold_with_the_clear_time() -> None:
    book = AlertBook()
    book.observe(SUBJECT, [breach()], T0)
    assert book.observe(SUBJECT, [], T0 + HOUR) == []
    assert book.next_due() == T0 + HOUR + HOLD
    assert book.tick(T0 + HOUR + HOLD - 1) == []
    [resolved] = book.tick(T0 + HOUR + HOLD)
    assert resolved["state"] == "resolved" and resolved["ends_at"] == T0 + HOUR
    assert resolved["fingerprint"] == breach().fingerprint
    assert fastavro.validation.validate(resolved, SLA_ALERT)
    assert len(book) == 0 and book.tick(T0 + DAY) == []


def test_resolve_hold_zero_resolves_at_once() -> None:
    book = AlertBook()
    book.observe(SUBJECT, [breach(resolve_hold_ms=0)], T0)
    assert states(book.observe(SUBJECT, [], T0 + MIN)) == ["resolved"]


def test_flapping_keeps_one_page_open() -> None:
    book = AlertBook()
    sent = book.observe(SUBJECT, [breach()], T0)
    for i in range(1, 6):  # clear for 5 min, back, clear, back ... never for the full hold
        sent += book.observe(SUBJECT, [], T0 + i * HOUR)
        sent += book.observe(SUBJECT, [breach()], T0 + i * HOUR + 5 * MIN)
    sent += book.observe(SUBJECT, [], T0 + 6 * HOUR)
    sent += book.tick(T0 + 7 * HOUR)
    assert states(sent) == ["firing", "firing", "resolved"]  # one reminder after 4 h firing
    assert sent[1]["starts_at"] == T0


def test_repeat_only_after_the_interval() -> None:
    book = AlertBook()
    book.observe(SUBJECT, [breach()], T0)
    assert book.next_due() == T0 + REPEAT
    assert book.observe(SUBJECT, [breach()], T0 + REPEAT - 1) == []
    [repeat] = book.tick(T0 + REPEAT)
    assert repeat["state"] == "firing" and repeat["starts_at"] == T0
    assert book.tick(T0 + REPEAT + HOUR) == []
    assert states(book.tick(T0 + 2 * REPEAT)) == ["firing"]


def test_no_repeat_when_the_interval_is_zero() -> None:
    book = AlertBook()
    book.observe(SUBJECT, [breach(repeat_interval_ms=0)], T0)
    assert book.tick(T0 + 30 * DAY) == [] and book.next_due() is None


def test_for_duration_holds_back_the_first_page() -> None:
    book = AlertBook()
    assert book.observe(SUBJECT, [breach(for_ms=HOUR)], T0) == []
    assert book.active()[0]["status"] == "pending" and book.next_due() == T0 + HOUR
    assert states(book.tick(T0 + HOUR)) == ["firing"]
    # a breach that clears while pending never pages, and never resolves either
    other = AlertBook()
    other.observe(SUBJECT, [breach(for_ms=HOUR)], T0)
    assert other.observe(SUBJECT, [], T0 + 30 * MIN) == [] and other.tick(T0 + DAY) == []
    assert len(other) == 0


def test_subjects_are_independent_and_rules_within_a_subject_too() -> None:
    book = AlertBook()
    two = [breach(), breach("delivery_late")]
    assert states(book.observe(SUBJECT, two, T0)) == ["firing", "firing"]
    other = breach(order_id="o-2")
    assert states(book.observe("order:o-2", [other], T0)) == ["firing"]
    book.observe(SUBJECT, [breach()], T0 + MIN)  # delivery_late cleared, o-2 untouched
    resolved = book.tick(T0 + MIN + HOLD)
    assert [(r["rule"], r["order_id"]) for r in resolved] == [("delivery_late", "o-1")]


def test_metric_breach_expires_when_no_window_refreshes_it() -> None:
    book = AlertBook()
    metric = breach("shipment_exception_rate_high", since=T0, order_id=None,
                    expires_at=T0 + 2 * HOUR, labels={"warehouse": "wms-east"},
                    key_labels=("warehouse",))
    book.observe("metric:x", [metric], T0)
    assert book.next_due() == T0 + 2 * HOUR
    assert book.tick(T0 + 2 * HOUR) == []
    [resolved] = book.tick(T0 + 2 * HOUR + HOLD)
    assert resolved["ends_at"] == T0 + 2 * HOUR and resolved["order_id"] is None


# --- silences ---


def maintenance(start: int = T0 - HOUR, end: int = T0 + 2 * HOUR) -> Silence:
    return Silence("sil-1", (Matcher("warehouse", "=", "wms-east"),), start, end,
                   created_by="ops", comment="quarterly maintenance")


def test_silenced_alert_is_recorded_not_sent_then_sent_when_the_silence_ends() -> None:
    book, silences = AlertBook(), [maintenance()]
    assert book.observe(SUBJECT, [breach()], T0, silences=silences) == []
    assert book.active()[0]["silenced_by"] == "sil-1"
    assert book.next_due(silences=silences) == T0 + 2 * HOUR
    [late] = book.tick(T0 + 2 * HOUR, silences=silences)
    assert late["state"] == "firing" and late["starts_at"] == T0
    assert book.active()[0]["silenced_by"] is None


def test_silenced_alert_that_clears_is_never_sent() -> None:
    book, silences = AlertBook(), [maintenance()]
    book.observe(SUBJECT, [breach()], T0, silences=silences)
    assert book.observe(SUBJECT, [], T0 + HOUR, silences=silences) == []
    assert book.tick(T0 + DAY, silences=silences) == [] and len(book) == 0


def test_silence_mutes_repeats_but_not_the_resolve_of_a_sent_page() -> None:
    book = AlertBook()
    book.observe(SUBJECT, [breach()], T0)
    silences = [maintenance(start=T0 + HOUR, end=T0 + DAY)]
    assert book.tick(T0 + REPEAT, silences=silences) == []
    book.observe(SUBJECT, [], T0 + 5 * HOUR, silences=silences)
    assert states(book.tick(T0 + 5 * HOUR + HOLD, silences=silences)) == ["resolved"]


def alert(**labels: str) -> dict[str, Any]:
    return {"rule": "ship_by_breached", "severity": "critical", "order_id": "o-1",
            "labels": labels}


@pytest.mark.parametrize(
    ("matcher", "labels", "muted"),
    [
        (Matcher("warehouse", "=", "wms-east"), {"warehouse": "wms-east"}, True),
        (Matcher("warehouse", "=", "wms-east"), {"warehouse": "wms-east,wms-west"}, True),
        (Matcher("warehouse", "=", "wms-east"), {"warehouse": "wms-eastern"}, False),
        (Matcher("warehouse", "=", "wms-east"), {}, False),
        (Matcher("warehouse", "!=", "wms-east"), {"warehouse": "wms-west"}, True),
        (Matcher("carrier", "=~", "ups|fedex"), {"carrier": "fedex"}, True),
        (Matcher("carrier", "=~", "ups"), {"carrier": "ups-freight"}, False),
        (Matcher("carrier", "!~", "ups.*"), {"carrier": "dhl"}, True),
        (Matcher("rule", "=", "ship_by_breached"), {}, True),
        (Matcher("order_id", "=", "o-2"), {}, False),
        (Matcher("severity", "=", "critical"), {}, True),
    ],
)
def test_matchers(matcher: Matcher, labels: dict[str, str], muted: bool) -> None:
    silence = Silence("s", (matcher,), T0, T0 + HOUR)
    assert is_silenced(alert(**labels), [silence], T0) is muted


def test_silence_time_bounds_and_validation() -> None:
    silence = maintenance(start=T0, end=T0 + HOUR)
    hit = alert(warehouse="wms-east")
    assert not is_silenced(hit, [silence], T0 - 1)
    assert is_silenced(hit, [silence], T0)
    assert not is_silenced(hit, [silence], T0 + HOUR)  # ends_at is exclusive
    with pytest.raises(ValueError):
        Silence("s", (), T0, T0 + HOUR)
    with pytest.raises(ValueError):
        Silence("s", (Matcher("a", "=", "b"),), T0, T0)
    with pytest.raises(ValueError):
        Matcher("a", "~=", "b")
    with pytest.raises(ValueError):
        Matcher("a", "=~", "(")


# --- persistence, fingerprints ---


def test_snapshot_is_json_and_restores_mid_lifecycle() -> None:
    book = AlertBook()
    book.observe(SUBJECT, [breach(), breach("delivery_late", for_ms=HOUR)], T0)
    book.observe(SUBJECT, [breach("delivery_late", for_ms=HOUR)], T0 + MIN)  # ship_by clearing
    restored = AlertBook.restore(json.loads(json.dumps(book.snapshot())))
    assert restored.snapshot() == book.snapshot()
    assert restored.tick(T0 + 2 * HOUR) == book.tick(T0 + 2 * HOUR)


def test_fingerprint_is_stable_across_processes_and_label_order() -> None:
    # Pinned: a changed fingerprint re-pages every open alert after a deploy.
    assert fingerprint("ship_by_breached", {}, "o-1") == "218a6b5a77d7f465"
    a = fingerprint("r", {"warehouse": "w", "carrier": "c"})
    assert a == fingerprint("r", {"carrier": "c", "warehouse": "w"})
    assert a != fingerprint("r", {"warehouse": "w", "carrier": "d"})
    assert fingerprint("r", {}, "o-1") != fingerprint("r", {}, "o-2")
    assert fingerprint("r", {}, "o-1") != fingerprint("q", {}, "o-1")


def test_end_to_end_from_the_fold() -> None:
    rules, state, book = load_rules(), new_state("o-1"), AlertBook()
    sent: list[dict[str, Any]] = []
    timeline = [order("placed", T0), *[shipment(s, T0 + HOUR + i * MIN) for i, s in
                                       enumerate(["allocated", "picked", "packed"])]]
    for event in timeline:
        step(state, kind_of(event), event)
        now = event["event_time"]
        sent += book.observe(order_subject("o-1"), evaluate_order(rules, state, now), now)
    for now in range(T0 + 2 * HOUR, T0 + 3 * DAY, 30 * MIN):  # deadline wakeups, re-evaluation
        sent += book.observe(order_subject("o-1"), evaluate_order(rules, state, now), now)
    shipped = shipment("shipped", T0 + 3 * DAY)
    step(state, kind_of(shipped), shipped)
    now = T0 + 3 * DAY
    sent += book.observe(order_subject("o-1"), evaluate_order(rules, state, now), now)
    sent += book.tick(now + HOLD)
    assert [(r["rule"], r["state"]) for r in sent] == [
        ("ship_by_breached", "firing"),
        *[("ship_by_breached", "firing")] * 5,  # 4 h reminders over the 24 h it stayed open
        ("ship_by_breached", "resolved"),
    ]
    assert sent[-1]["ends_at"] == T0 + 3 * DAY
    assert sent[0]["runbook_url"] == "runbooks/ship_by_breached.md"
    assert sent[0]["labels"] == {"channel": "web", "warehouse": "wms-east", "carrier": "ups"}
