"""The pure oracle for agent tests: the input topics as the broker holds them, run through
`tables.order_runner` one runner per partition (as the agent keeps one clock per partition),
and the live application's state as its changelogs hold it."""

from __future__ import annotations

import json
from typing import Any

from streams.schema_source import RegistrySchemaSource
from streams.serde import DecodeError, WireDecoder
from streams.settings import Settings
from streams.topics import ORDER_STATE_TABLE, TopicNames, changelog_topic
from tables import fulfillment
from tables.order_pipeline import PipelineConfig, Record, fulfillment_state
from tables.order_runner import OrderRunner
from tests.kafka_helpers import read_topic


def oracle_records(settings: Settings) -> dict[str, Record]:
    """Final records of every key, computed purely from what the input topics hold."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    source = RegistrySchemaSource(settings.registry_url)
    by_partition: dict[int, list[tuple[str, str, dict[str, Any]]]] = {}
    for topic in names.inputs:
        decoder = WireDecoder.for_record(source, names.record_of(topic))
        kind = names.kind_of(topic)
        for partition, _, key, value in read_topic(settings.bootstrap_servers, topic):
            assert key is not None and value is not None
            try:
                event = decoder.decode(value)
            except DecodeError:
                continue
            if fulfillment.validate(kind, event) is None:
                by_partition.setdefault(partition, []).append((key.decode(), kind, event))
    records: dict[str, Record] = {}
    config = PipelineConfig(closed_order_retention_ms=settings.closed_order_retention_ms)
    for events in by_partition.values():
        runner = OrderRunner(config, settings.allowed_lateness_ms)
        runner.process_batch(events)
        records.update(runner.records)
    return records


def live_records(settings: Settings) -> dict[str, Record]:
    """The live order table as its changelog holds it (latest value per key)."""
    topic = changelog_topic(settings.app_id, ORDER_STATE_TABLE)
    records: dict[str, Record] = {}
    for _, _, key, value in read_topic(settings.bootstrap_servers, topic):
        assert key is not None
        if value is None:
            records.pop(key.decode(), None)
        else:
            records[key.decode()] = json.loads(value)
    return records


def verdicts(records: dict[str, Record]) -> dict[str, dict[str, Any]]:
    """What must agree between runs, whatever the arrival order and batching: the canonical
    state (with the reconciled verdict), the open mismatches and the firing alerts."""
    out: dict[str, dict[str, Any]] = {}
    for key, record in records.items():
        state = fulfillment_state(record)
        out[key] = {
            "state": None if state is None else fulfillment.canonical_view(state),
            "mismatches": sorted((m["mismatch_id"], m["difference"])
                                 for m in record["rec"].values()),
            "firing": sorted(a["fingerprint"] for a in record["sla"]["alerts"]
                             if a["status"] == "firing"),
        }
    return out
