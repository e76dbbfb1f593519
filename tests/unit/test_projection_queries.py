"""Query parameters of GET /alerts and /mismatches: parsed strictly, filtered, sorted, summed."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from streams.projection_queries import (
    DEFAULT_LIMIT,
    BadQuery,
    list_alerts,
    list_mismatches,
    parse_alert_query,
    parse_mismatch_query,
)
from tables.alerts import Matcher, Silence

NOW = 1_800_000_000_000


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def alert(fp: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "fingerprint": fp, "rule": "ship_by_breached", "severity": "critical",
        "state": "firing", "starts_at": 100, "ends_at": None, "summary": "s",
        "description": "d", "labels": {"warehouse": "wms-east", "channel": "web"},
        "order_id": f"o-{fp}", "correlation_id": f"c-{fp}", "runbook_url": "r"}
    return {**base, **kw}


ALERTS = [
    alert("a", starts_at=100),
    alert("b", starts_at=300),
    alert("c", severity="warning", starts_at=500, rule="delivery_late"),
    alert("d", state="resolved", starts_at=900, ends_at=1_000),
    alert("e", labels={"warehouse": "wms-west"}, starts_at=200),
]


def fingerprints(body: dict[str, Any]) -> list[str]:
    return [a["fingerprint"] for a in body["alerts"]]


def test_alerts_firing_first_then_severity_then_newest() -> None:
    body = list_alerts(ALERTS, parse_alert_query(q()), [], NOW)
    assert fingerprints(body) == ["b", "e", "a", "c", "d"]
    assert body["count"] == body["matched"] == 5
    assert all(a["silenced_by"] is None for a in body["alerts"])


@pytest.mark.parametrize(("params", "expected"), [
    ((("state", "resolved"),), ["d"]),
    ((("state", "firing"), ("rule", "delivery_late")), ["c"]),
    ((("label", "warehouse=wms-west"),), ["e"]),
    ((("label", "warehouse!=wms-west"), ("label", "severity=critical")), ["b", "a", "d"]),
    ((("label", "rule=~ship_.*"), ("state", "firing")), ["b", "e", "a"]),
    ((("order_id", "o-c"),), ["c"]),
    ((("correlation_id", "c-d"),), ["d"]),
    ((("correlation_id", "nope"),), []),
    ((("state", ""), ("rule", "")), ["b", "e", "a", "c", "d"]),  # empty = no filter
])
def test_alert_filters(params: tuple[tuple[str, str], ...], expected: list[str]) -> None:
    assert fingerprints(list_alerts(ALERTS, parse_alert_query(q(*params)), [], NOW)) == expected


def test_alert_limit_cuts_after_sorting_and_says_how_many_matched() -> None:
    body = list_alerts(ALERTS, parse_alert_query(q(("limit", "2"))), [], NOW)
    assert fingerprints(body) == ["b", "e"]
    assert (body["count"], body["matched"]) == (2, 5)
    assert parse_alert_query(q()).limit == DEFAULT_LIMIT


def test_an_active_silence_mutes_matching_firing_alerts_only() -> None:
    silence = Silence("s-1", (Matcher("warehouse", "=", "wms-east"),), NOW - 1, NOW + 1)
    ended = Silence("s-0", (Matcher("rule", "=", "delivery_late"),), NOW - 10, NOW - 1)
    body = list_alerts(ALERTS, parse_alert_query(q()), [ended, silence], NOW)
    muted = {a["fingerprint"]: a["silenced_by"] for a in body["alerts"]}
    # d matches too but is resolved: nothing to mute; e is in another warehouse.
    assert muted == {"a": "s-1", "b": "s-1", "c": "s-1", "d": None, "e": None}


@pytest.mark.parametrize(("params", "fragment"), [
    ((("state", "burning"),), "state must be one of firing, resolved"),
    ((("label", "warehouse"),), "label: bad matcher"),
    ((("label", "1abc=x"),), "label: bad matcher"),
    ((("label", "rule=~(unclosed"),), "label: bad matcher"),
    ((("limit", "ten"),), "limit must be a whole number"),
    ((("limit", "0"),), "limit must be from 1"),
    ((("limit", "10001"),), "limit must be from 1"),
    ((("statee", "firing"),), "unknown parameter 'statee'"),
    ((("state", "firing"), ("state", "resolved")), "given more than once"),
])
def test_bad_alert_parameters_say_what_is_wrong(params: tuple[tuple[str, str], ...],
                                                fragment: str) -> None:
    with pytest.raises(BadQuery, match=fragment.replace("(", r"\(")):
        parse_alert_query(q(*params))


def mismatch(mid: str, category: str, difference: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mismatch_id": mid, "order_id": mid.split(":")[0], "category": category,
        "status": "open", "expected": 1_000, "actual": 1_000 + difference,
        "difference": difference, "currency": "EUR", "provider": "stripe",
        "settlement_ids": [], "correlation_id": f"c-{mid}", "detected_at": 10,
        "resolved_at": None}
    return {**base, **kw}


MISMATCHES = [
    mismatch("o1:unsettled", "unsettled", -1_000, detected_at=10),
    mismatch("o2:amount_mismatch", "amount_mismatch", -50, detected_at=30),
    mismatch("o3:amount_mismatch", "amount_mismatch", 20, currency="USD", provider="adyen",
             detected_at=20),
    mismatch("o4:unsettled", "unsettled", -700, status="resolved", resolved_at=40),
]


def ids(body: dict[str, Any]) -> list[str]:
    return [m["mismatch_id"] for m in body["mismatches"]]


def test_mismatches_open_first_then_newest_with_totals_per_currency_and_category() -> None:
    body = list_mismatches(MISMATCHES, parse_mismatch_query(q()))
    assert ids(body) == ["o2:amount_mismatch", "o3:amount_mismatch", "o1:unsettled",
                         "o4:unsettled"]
    assert body["totals"] == {"EUR": {"unsettled": -1_700, "amount_mismatch": -50},
                              "USD": {"amount_mismatch": 20}}


@pytest.mark.parametrize(("params", "expected"), [
    ((("status", "open"), ("category", "unsettled")), ["o1:unsettled"]),
    ((("status", "resolved"),), ["o4:unsettled"]),
    ((("provider", "adyen"),), ["o3:amount_mismatch"]),
    ((("order_id", "o2"),), ["o2:amount_mismatch"]),
    ((("correlation_id", "c-o1:unsettled"),), ["o1:unsettled"]),
])
def test_mismatch_filters(params: tuple[tuple[str, str], ...], expected: list[str]) -> None:
    assert ids(list_mismatches(MISMATCHES, parse_mismatch_query(q(*params)))) == expected


def test_mismatch_totals_cover_every_match_not_only_the_page() -> None:
    body = list_mismatches(MISMATCHES, parse_mismatch_query(q(("status", "open"),
                                                              ("limit", "1"))))
    assert (body["count"], body["matched"]) == (1, 3)
    assert body["totals"] == {"EUR": {"unsettled": -1_000, "amount_mismatch": -50},
                              "USD": {"amount_mismatch": 20}}


@pytest.mark.parametrize(("params", "fragment"), [
    ((("category", "vibes"),), "category must be one of unsettled"),
    ((("status", "firing"),), "status must be one of open, resolved"),
    ((("limit", "-3"),), "limit must be from 1"),
    ((("label", "a=b"),), "unknown parameter 'label'"),
])
def test_bad_mismatch_parameters_say_what_is_wrong(params: tuple[tuple[str, str], ...],
                                                   fragment: str) -> None:
    with pytest.raises(BadQuery, match=fragment):
        parse_mismatch_query(q(*params))
