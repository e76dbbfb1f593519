"""Loading and validating runbooks/rules.toml: every mistake fails at load, naming the rule."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tables.sla_rules import DEFAULT_RULES_PATH, RuleError, load_rules, parse_duration, parse_rules

REQUIRED = {
    "order_not_allocated", "ship_by_breached", "delivery_late", "shipment_exception_open",
    "refund_overdue", "orphan_event", "unsettled_order", "missing_refund",
}


def document() -> dict[str, Any]:
    with DEFAULT_RULES_PATH.open("rb") as fh:
        return tomllib.load(fh)


def test_the_shipped_rules_load_with_the_generator_thresholds() -> None:
    rules = {r.name: r for r in load_rules()}
    assert set(rules) >= REQUIRED
    assert {r.kind for r in rules.values() if r.scope == "metric"} == {"metric_above"}
    hour = 3_600_000
    assert rules["order_not_allocated"].after_ms == 24 * hour
    assert rules["shipment_exception_open"].after_ms == 24 * hour
    assert rules["refund_overdue"].after_ms == 72 * hour
    assert rules["orphan_event"].after_ms == hour
    assert rules["ship_by_breached"].anchor == "promised_ship_by"
    assert rules["delivery_late"].anchor == "promised_deliver_by"
    assert rules["order_not_allocated"].repeat_interval_ms == 4 * hour  # from [defaults]
    assert rules["unsettled_order"].repeat_interval_ms == 24 * hour  # overridden
    assert all(r.severity in ("critical", "warning", "info") for r in rules.values())


def test_load_rules_accepts_a_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(DEFAULT_RULES_PATH.read_bytes())
    assert [r.name for r in load_rules(path)] == [r.name for r in load_rules()]


@pytest.mark.parametrize(
    ("text", "ms"), [("250ms", 250), ("90s", 90_000), ("15m", 900_000), ("2h", 7_200_000),
                     ("3d", 259_200_000), ("0s", 0)],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["1.5h", "h", "10", "-5m", "1h30m", "", "5 weeks"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(RuleError):
        parse_duration(text)


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    """The shipped document with one value replaced (path into the first rule)."""
    doc = copy.deepcopy(document())
    target: Any = doc["rules"][0]
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["severity"], "page", "severity"),
        (["condition", "kind"], "eval", "condition kind"),
        (["condition", "milestone"], "allocated", "timestamp fields"),
        (["condition", "extra"], 1, "unknown parameters"),
        (["condition", "milestone"], KeyError, "needs"),
        (["deadline", "from"], "exception_since", "deadline from"),
        (["deadline", "after"], "a day", "bad duration"),
        (["for"], "soon", "for"),
        (["labels"], ["warehouse", "customer_ref"], "labels"),
        (["summary"], "Order ${order} late", "placeholders"),
        (["runbook"], "../etc/passwd", "runbook"),
        (["name"], "Order Not Allocated", "snake_case"),
        (["escalate_to"], "bob", "unknown keys"),
    ],
)
def test_invalid_rules_are_rejected(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules(broken(path, value))


def test_duplicate_names_and_unknown_defaults_are_rejected() -> None:
    doc = document()
    doc["rules"].append(copy.deepcopy(doc["rules"][0]))
    with pytest.raises(RuleError, match="duplicate"):
        parse_rules(doc)
    with pytest.raises(RuleError, match="defaults"):
        parse_rules({**document(), "defaults": {"repeat": "1h"}})
    with pytest.raises(RuleError, match="no"):
        parse_rules({"rules": []})


def test_metric_rule_checks() -> None:
    doc = document()
    metric_rule = next(r for r in doc["rules"] if r["condition"]["kind"] == "metric_above")
    for patch, message in [
        ({"condition": {**metric_rule["condition"], "field": "p42"}}, "metric field"),
        ({"condition": {**metric_rule["condition"], "threshold": "high"}}, "threshold"),
        ({"deadline": {"from": "x", "after": "1h"}}, "no deadline"),
        ({"labels": ["warehouse"]}, "labels from the metric"),
    ]:
        with pytest.raises(RuleError, match=message):
            parse_rules({"rules": [{**metric_rule, **patch}]})


def test_runbook_url_is_base_plus_path() -> None:
    doc = document()
    doc["defaults"]["runbook_base_url"] = "https://git.example/fs/blob/main/"
    rule = parse_rules(doc)[0]
    assert rule.runbook_url == f"https://git.example/fs/blob/main/runbooks/{rule.name}.md"
