"""The fulfillment agent on the real broker, fed by the generator, checked three ways:
against the generator's ground truth, against the pure fold, and for duplicate silence."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.emit import GeneratedEvent
from streams.generator.output import produce_to_kafka
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireDecoder
from streams.settings import Settings
from streams.topics import TopicNames
from tables import fulfillment
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import end_offsets, read_topic, wait_for_zero_lag

pytestmark = pytest.mark.broker
KINDS = {"orders": "order", "shipments": "shipment", "returns": "return",
         "settlements": "settlement"}


def _key(ev: GeneratedEvent) -> str:
    assert ev.value is not None
    return ev.key if ev.key is not None else ev.value["settlement_line_id"]


def pure_fold(events: list[GeneratedEvent]) -> dict[str, dict[str, Any]]:
    """The oracle: every valid event folded per key, in event-time order."""
    by_key: dict[str, list[GeneratedEvent]] = defaultdict(list)
    for ev in events:
        if not ev.is_bad:
            by_key[_key(ev)].append(ev)
    final: dict[str, dict[str, Any]] = {}
    for key, evs in by_key.items():
        state = fulfillment.new_state(key)
        for ev in sorted(evs, key=lambda e: (e.value["event_time"], e.value["event_id"])):
            fulfillment.apply(state, KINDS[ev.topic], ev.value)
        derived = fulfillment.derive(state)
        if derived is not None:
            final[key] = derived
    return final


def emitted_states(settings: Settings, names: TopicNames) -> dict[str, list[dict[str, Any]]]:
    decoder = WireDecoder.for_record(RegistrySchemaSource(settings.registry_url),
                                     "FulfillmentState")
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, key, value in read_topic(settings.bootstrap_servers, names.fulfillment_states):
        assert key is not None and value is not None
        by_order[key.decode()].append(decoder.decode(value))
    return by_order


def test_generated_traffic_matches_truth_and_the_pure_fold(
    app_settings: Settings, start_worker: StartWorker
) -> None:
    settings = app_settings
    names = TopicNames.with_prefix(settings.topic_prefix)
    generated = generate(GeneratorConfig(orders=120, seed=20261123))
    produce_to_kafka(generated.events, bootstrap=settings.bootstrap_servers,
                     registry_url=settings.registry_url, topic_prefix=settings.topic_prefix,
                     partitions=settings.partitions)
    worker = start_worker()
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[worker])

    emitted = emitted_states(settings, names)
    oracle = pure_fold(generated.events)
    assert set(emitted) == set(oracle), "an order is missing or extra on fulfillment-states"
    for order_id, versions in emitted.items():
        assert [s["version"] for s in versions] == list(range(1, len(versions) + 1)), order_id
        assert fulfillment.canonical_view(versions[-1]) == fulfillment.canonical_view(
            oracle[order_id]), f"{order_id}: live result differs from the pure fold"

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
    before = end_offsets(settings.bootstrap_servers, [names.fulfillment_states])
    replayed = [ev for ev in generated.events if not ev.is_bad]
    produce_to_kafka(replayed, bootstrap=settings.bootstrap_servers,
                     registry_url=settings.registry_url, topic_prefix=settings.topic_prefix)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[worker])
    assert end_offsets(settings.bootstrap_servers, [names.fulfillment_states]) == before
