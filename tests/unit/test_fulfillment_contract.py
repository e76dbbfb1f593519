"""The fold speaks the Avro contracts: its inputs and outputs validate against schemas/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fastavro
from fastavro.validation import validate as avro_validate

from tables import fulfillment, schema_files

from .events import DAY, HOUR, T0, kind_of, order, ret, settlement, shipment

REPO = Path(__file__).resolve().parents[2]


def _schema(name: str) -> object:
    return fastavro.parse_schema(schema_files.strip_logical_types(schema_files.load_schema(name)))


HISTORY = [
    order(),
    shipment("shipped", T0 + HOUR, lines={"l1": 2}, shipment_id="s-1"),
    shipment("exception", T0 + DAY, lines={}, shipment_id="s-1", exception_reason="lost"),
    shipment("allocated", T0 + HOUR, lines={"l2": 1, "l9": 1}, shipment_id="s-2",
             warehouse="3pl-acme"),
    ret("received", T0 + 3 * DAY, refund_amount=1000),
    settlement("charge", 2500, T0 + DAY),
    settlement("fee", -90, T0 + DAY, currency="EUR"),
]


def test_test_builders_emit_schema_valid_events() -> None:
    for event in HISTORY:
        record = schema_files.INPUT_TOPIC_RECORDS[kind_of(event) + "s"]
        assert avro_validate(event, _schema(record), raise_errors=True)


def test_derived_state_is_a_valid_fulfillment_state_record() -> None:
    state = fulfillment.new_state("o-1")
    for event in HISTORY:
        fulfillment.step(state, kind_of(event), event)
    fs = fulfillment.derive(state)
    assert fs is not None
    assert fs["open_exceptions"] and fs["flags"]  # the rich parts are exercised
    assert avro_validate(fs, _schema("FulfillmentState"), raise_errors=True)


def test_canonical_view_drops_only_arrival_dependent_fields() -> None:
    state = fulfillment.new_state("o-1")
    for event in HISTORY:
        fulfillment.apply(state, kind_of(event), event)
    fs = fulfillment.derive(state)
    assert fs is not None
    dropped = set(fs) - set(fulfillment.canonical_view(fs))
    assert dropped == {
        "version", "caused_by_event_id", "caused_by_source_system", "correlation_id", "updated_at"
    }


def test_digest_is_stable_across_processes() -> None:
    # Versions survive restarts only if the fingerprint does not depend on hash seeds.
    code = (
        "from tables import fulfillment\n"
        "from tests.unit.test_fulfillment_contract import HISTORY\n"
        "from tests.unit.events import kind_of\n"
        "s = fulfillment.new_state('o-1')\n"
        "[fulfillment.apply(s, kind_of(e), e) for e in HISTORY]\n"
        "print(fulfillment.digest(fulfillment.derive(s)))\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1
