"""Every record is a valid Avro record of its topic, except the deliberately bad ones."""

from __future__ import annotations

from collections import Counter
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from streams.generator import DEFAULT_MIX, Generated, GeneratorConfig, generate
from tables import schema_files
from tables.fulfillment_currencies import CURRENCY_CODES

TOPICS = tuple(schema_files.INPUT_TOPIC_RECORDS)


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    return {t: fastavro.parse_schema(schema_files.load_topic_schema(t)) for t in TOPICS}


def test_every_valid_record_validates(parsed: dict[str, Any]) -> None:
    # A smaller run of its own: fastavro's validator is the slow part, and 300 orders still
    # tell every story at least once.
    small = generate(GeneratorConfig(orders=300, seed=9, raw_garbage=True))
    assert set(small.truth.counts["stories"]) == set(DEFAULT_MIX)
    checked: Counter[str] = Counter()
    for ev in small.events:
        if ev.is_bad:
            continue
        assert ev.value is not None and ev.raw is None
        validate(ev.value, parsed[ev.topic], raise_errors=True)
        checked[ev.topic] += 1
    assert set(checked) == set(TOPICS)


def test_keys_are_order_ids(run: Generated) -> None:
    for ev in run.events:
        if ev.value is None:
            continue
        expected = ev.value["order_id"] or ev.value.get("settlement_line_id")
        assert ev.key == expected


def test_bad_records_are_bad_in_the_intended_way(run: Generated,
                                                  parsed: dict[str, Any]) -> None:
    bad = [ev for ev in run.events if ev.is_bad]
    reasons = Counter(ev.bad_reason for ev in bad)
    assert set(reasons) == {"negative_quantity", "unknown_currency", "not_avro", "bad_magic_byte"}
    for ev in bad:
        if ev.bad_reason == "negative_quantity":
            assert ev.value is not None
            assert any(line["quantity"] < 0 for line in ev.value["lines"])
            validate(ev.value, parsed[ev.topic], raise_errors=True)  # Avro-valid, semantically not
        elif ev.bad_reason == "unknown_currency":
            assert ev.value is not None and ev.value["currency"] not in CURRENCY_CODES
        else:
            assert ev.value is None and ev.raw is not None and ev.raw[:1] != b"\x00"
    dead = run.truth.dead_letters
    assert dead["count"] == len(bad)
    assert dead["by_reason"] == dict(sorted(reasons.items()))


def test_valid_records_use_known_currencies(run: Generated) -> None:
    for ev in run.events:
        if ev.value is not None and not ev.is_bad and ev.value.get("currency") is not None:
            assert ev.value["currency"] in CURRENCY_CODES


def test_settlement_lines_look_real(run: Generated) -> None:
    lines = [ev.value for ev in run.events
             if ev.topic == "settlements" and ev.value and not ev.is_bad and not ev.is_duplicate]
    ids = [v["settlement_line_id"] for v in lines]
    assert len(ids) == len(set(ids))
    for v in lines:
        assert v["settlement_period_start"] <= v["posted_time"] <= v["settlement_period_end"]
        if v["transaction_type"] == "charge":
            assert v["amount"] > 0
        else:
            assert v["amount"] < 0
    # one settlement id per provider and period
    by_period: dict[tuple[str, int], set[str]] = {}
    for v in lines:
        by_period.setdefault((v["provider"], v["settlement_period_start"]), set()).add(
            v["settlement_id"])
    assert all(len(ids) == 1 for ids in by_period.values())
