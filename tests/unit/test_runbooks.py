"""Every rule has a runbook and every runbook a rule; runbooks carry what on-call needs."""

from __future__ import annotations

import pytest

from tables.sla_rules import DEFAULT_RULES_PATH, load_rules

RUNBOOKS = DEFAULT_RULES_PATH.parent
REPO = RUNBOOKS.parent
RULES = load_rules()


def test_every_rule_has_its_runbook_and_every_runbook_a_rule() -> None:
    declared = {rule.runbook for rule in RULES}
    present = {f"runbooks/{path.name}" for path in RUNBOOKS.glob("*.md")}
    assert declared == present
    assert all(rule.runbook == f"runbooks/{rule.name}.md" for rule in RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_runbook_sections_and_commands(rule) -> None:  # type: ignore[no-untyped-def]
    text = (REPO / rule.runbook).read_text()
    assert text.startswith(f"# {rule.name}\n")
    for section in ("## What it means", "## Business impact", "## Diagnose", "## Fix",
                    "## Escalate"):
        assert section in text, section
    assert "fstreams alerts list" in text
    assert "curl http://127.0.0.1:6066/orders/<order_id>" in text
    assert "fstreams dlq list" in text
    assert rule.severity in text  # the page/ticket level on-call sees matches the rule
