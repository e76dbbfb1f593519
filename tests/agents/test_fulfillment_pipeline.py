"""The fulfillment agent on the real broker, fed by the generator, checked three ways:
against the generator's ground truth, against the pure fold, and for duplicate silence."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireDecoder
from streams.settings import Settings
from streams.timers import CLOCK_KEY
from streams.topics import ORDER_STATE_TABLE, ORDER_TIMERS_TABLE, TopicNames, changelog_topic
from tables import fulfillment
from tests.agents.conftest import StartWorker
from tests.agents.oracle import live_records, oracle_records, verdicts
from tests.kafka_helpers import end_offsets, read_topic, wait_for_zero_lag

pytestmark = pytest.mark.broker
ALERTING_MISMATCHES = {"unsettled": "unsettled_order", "missing_refund": "missing_refund"}


def partition_times(settings: Settings) -> dict[int, int]:
    """Each partition's final stream time, as the worker's clock keys in its timers table hold
    it (every input read to its end: the newest event time minus the allowed lateness)."""
    times = {}
    topic = changelog_topic(settings.app_id, ORDER_TIMERS_TABLE)
    for partition, _, key, value in read_topic(settings.bootstrap_servers, topic):
        if key == CLOCK_KEY and value is not None:
            clock = json.loads(value)
            times[partition] = max(clock["max"].values()) - clock["allowed_lateness_ms"]
    return times


def emitted_states(settings: Settings, names: TopicNames) -> dict[str, list[dict[str, Any]]]:
    decoder = WireDecoder.for_record(RegistrySchemaSource(settings.registry_url),
                                     "FulfillmentState")
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, key, value in read_topic(settings.bootstrap_servers, names.fulfillment_states):
        assert key is not None and value is not None
        by_order[key.decode()].append(decoder.decode(value))
    return by_order


# A timer step of 1 makes every due timer its own step (the stepping loop at its extreme):
# input committed to its end must still mean every due timer fired, same result.
@pytest.mark.parametrize("timer_step", [None, 1], ids=["default_timer_step", "timer_step_1"])
def test_generated_traffic_matches_truth_and_the_pure_fold(
    app_settings: Settings, start_worker: StartWorker, timer_step: int | None
) -> None:
    settings = app_settings
    names = TopicNames.with_prefix(settings.topic_prefix)
    generated = generate(GeneratorConfig(orders=120, seed=20261123))
    produce_to_kafka(generated.events, bootstrap=settings.bootstrap_servers,
                     registry_url=settings.registry_url, topic_prefix=settings.topic_prefix,
                     partitions=settings.partitions)
    step = {} if timer_step is None else {"FSTREAMS_TIMER_STEP": str(timer_step)}
    worker = start_worker(**step)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[worker])

    # The live table equals the pure pipeline run over what the input topics hold: canonical
    # state, reconciled verdict, open mismatches and firing alerts of every order.
    live = verdicts(live_records(settings))
    assert live == verdicts(oracle_records(settings))

    # The emitted stream ends where the table is: versions count up by one, the last one is
    # the order's canonical state.
    emitted = emitted_states(settings, names)
    assert set(emitted) == {k for k, v in live.items() if v["state"] is not None}
    for order_id, versions in emitted.items():
        assert [s["version"] for s in versions] == list(range(1, len(versions) + 1)), order_id
        assert fulfillment.canonical_view(versions[-1]) == live[order_id]["state"], order_id

    # Every injected money fault is open as a mismatch, and nothing else is (clean orders
    # produce none); every unresolved SLA breach is firing.
    open_mismatches = {(key, m["category"]) for key, record in live_records(settings).items()
                       for m in record["rec"].values()}
    expected = {(m["order_id"] or m["settlement_line_ids"][0], m["category"])
                for m in generated.truth.mismatches}
    early = {(m["order_id"] or m["settlement_line_ids"][0], m["category"])
             for m in generated.truth.not_yet_due if "category" in m}
    assert expected <= open_mismatches <= expected | early
    # Each partition has its own stream time (the truth file has one, over all partitions):
    # compare the breaches due by the earliest partition's time.
    horizon = min(partition_times(settings).values())
    firing = {(a["rule"], a["order_id"]) for record in live_records(settings).values()
              for a in record["sla"]["alerts"]
              if a["status"] == "firing" and a["starts_at"] <= horizon}
    unresolved = {(b["rule"], b["order_id"]) for b in generated.truth.sla_breaches
                  if b["resolved_at"] is None and b["deadline"] <= horizon}
    unresolved |= {(ALERTING_MISMATCHES[m["category"]], m["order_id"])
                   for m in generated.truth.mismatches
                   if m["category"] in ALERTING_MISMATCHES and m["due_at"] <= horizon}
    assert firing == unresolved

    truth = generated.truth.orders
    for order_id, expected in truth.items():
        final = emitted[order_id][-1]
        got = {k: final[k] for k in ("fulfillment_status", "returns_status")}
        assert got == {k: expected[k] for k in got}, order_id
        lines = {ln["line_id"]: ln for ln in final["lines"]}
        for line_id, quantities in expected["lines"].items():
            for field in ("ordered", "cancelled", "shipped", "delivered", "returned"):
                assert lines[line_id][field] == quantities[field], (order_id, line_id, field)

    dead = read_topic(settings.bootstrap_servers, names.dead_letters)
    assert len(dead) == generated.truth.dead_letters["count"]

    # A source replays everything it sent (a 3PL re-sends a day): nothing new is emitted.
    derived = [names.fulfillment_states, names.reconciliation_mismatches, names.sla_alerts]
    before = end_offsets(settings.bootstrap_servers, derived)
    replayed = [ev for ev in generated.events if not ev.is_bad]
    produce_to_kafka(replayed, bootstrap=settings.bootstrap_servers,
                     registry_url=settings.registry_url, topic_prefix=settings.topic_prefix)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[worker])
    assert end_offsets(settings.bootstrap_servers, derived) == before


def test_closed_orders_leave_the_table_as_tombstones(
    app_settings: Settings, start_worker: StartWorker
) -> None:
    retention_ms = 6 * 3_600_000
    settings = app_settings.model_copy(update={"closed_order_retention_ms": retention_ms})
    names = TopicNames.with_prefix(settings.topic_prefix)
    generated = generate(GeneratorConfig(orders=60, seed=77))
    produce_to_kafka(generated.events, bootstrap=settings.bootstrap_servers,
                     registry_url=settings.registry_url, topic_prefix=settings.topic_prefix,
                     partitions=settings.partitions)
    worker = start_worker(FSTREAMS_CLOSED_ORDER_RETENTION_MS=str(retention_ms))
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[worker])

    live = live_records(settings)
    oracle = oracle_records(settings)
    # The oracle evaluates each order once, at the end; the live worker evaluated it along the
    # way, so an order whose alert cleared at the very end still waits out the alert's
    # resolve hold (it expires when stream time passes it). Everything else is identical.
    waiting = set(live) - set(oracle)
    for key in waiting:
        assert not live[key]["rec"], key
        assert {a["status"] for a in live[key]["sla"]["alerts"]} == {"resolving"}, key
    assert set(oracle) <= set(live)
    assert verdicts({k: live[k] for k in oracle}) == verdicts(oracle)
    delivered = {k for k, v in generated.truth.orders.items()
                 if v["fulfillment_status"] == "delivered"}
    expired = delivered - set(live)
    assert expired, "delivered, settled and quiet orders should have expired"
    changelog = read_topic(settings.bootstrap_servers,
                           changelog_topic(settings.app_id, ORDER_STATE_TABLE))
    tombstones = {key.decode() for _, _, key, value in changelog if value is None and key}
    assert expired <= tombstones
