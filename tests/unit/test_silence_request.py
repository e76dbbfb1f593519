"""POST /silences bodies: what is accepted, and what each refusal says."""

from __future__ import annotations

from typing import Any

import pytest

from streams.alerting.silence_request import parse_silence_request
from streams.alerting.silences import SilenceError
from tables.alerts import Matcher

NOW = 1_800_000_000_000
HOUR = 3_600_000


def test_text_and_object_matchers_with_a_duration() -> None:
    wanted = parse_silence_request({
        "matchers": ["warehouse=wms-east", {"label": "rule", "op": "=~", "value": "ship_.*"},
                     {"name": "channel", "value": "web", "isEqual": False}],
        "duration": "2h", "created_by": " jane ", "comment": " carrier outage "}, NOW)
    assert wanted.matchers == (Matcher("warehouse", "=", "wms-east"),
                               Matcher("rule", "=~", "ship_.*"),
                               Matcher("channel", "!=", "web"))
    assert (wanted.starts_at, wanted.duration_ms) == (NOW, 2 * HOUR)
    assert (wanted.created_by, wanted.comment) == ("jane", "carrier outage")


def test_ends_at_and_a_later_start() -> None:
    wanted = parse_silence_request({"matchers": ["order_id=o-1"], "starts_at": NOW + HOUR,
                                    "ends_at": NOW + 3 * HOUR, "comment": "maintenance"}, NOW)
    assert (wanted.starts_at, wanted.duration_ms, wanted.created_by) == (NOW + HOUR, 2 * HOUR,
                                                                        "")


GOOD: dict[str, Any] = {"matchers": ["rule=x"], "duration": "1h", "comment": "why"}


@pytest.mark.parametrize(("change", "fragment"), [
    ({"matchers": []}, "non-empty list"),
    ({"matchers": "rule=x"}, "non-empty list"),
    ({"matchers": ["rule"]}, "bad matcher"),
    ({"matchers": [{"label": "rule", "op": "==", "value": "x"}]}, "op must be one of"),
    ({"matchers": [{"label": "9x", "value": "x"}]}, "letters, digits"),
    ({"matchers": [{"label": "rule", "op": "=~", "value": "("}]}, "bad matcher"),
    ({"matchers": [{"label": "rule"}]}, "needs string label"),
    ({"matchers": [42]}, "a matcher is a string"),
    ({"duration": "forever"}, "bad duration"),
    ({"duration": 3600}, "duration must be a string"),
    ({"duration": None}, "exactly one of duration"),
    ({"ends_at": NOW + HOUR}, "exactly one of duration"),
    ({"comment": "  "}, "say why"),
    ({"comment": None}, "say why"),
    ({"created_by": 7}, "created_by must be a string"),
    ({"starts_at": "now"}, "starts_at must be epoch milliseconds"),
    ({"starts_at": True}, "starts_at must be epoch milliseconds"),
    ({"starts_at": NOW - 3 * HOUR}, "would end in the past"),
    ({"until": "tomorrow"}, "unknown field"),
])
def test_refusals_say_what_to_change(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SilenceError, match=fragment):
        parse_silence_request({**GOOD, **change}, NOW)


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(SilenceError, match="JSON object"):
        parse_silence_request(["rule=x"], NOW)
    with pytest.raises(SilenceError, match="end after it starts"):
        parse_silence_request({"matchers": ["rule=x"], "ends_at": NOW, "starts_at": NOW,
                               "comment": "c"}, NOW)
