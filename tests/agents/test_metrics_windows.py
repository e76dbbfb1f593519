"""Windowed metrics on the real broker: generated traffic through a worker; the WindowedMetric
records on `fulfillment-metrics` equal a pure recomputation from the emitted FulfillmentStates,
each window is emitted exactly once, closed windows leave the table as tombstones, and
observations beyond grace are counted in `late_events`."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from agents.metrics import WINDOWS_TABLE
from streams.broker.launcher import free_port
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.generator.thresholds import DAY_MS, HOUR_MS
from streams.observations import observations_topic
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireDecoder
from streams.settings import Settings
from streams.topics import TopicNames, changelog_topic
from tables import metrics_rules
from tables.windows import (
    WINDOW_SIZES_MS,
    Observation,
    add_observation,
    close_time,
    new_aggregate,
    parse_window_key,
    place,
    to_windowed_metric,
)
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import end_offsets, read_topic, wait_for_zero_lag

pytestmark = pytest.mark.broker

# Longer than the whole traffic's event-time span: the four state partitions reach the single
# observations partition in any interleaving, and nothing of the first traffic may be late.
GRACE_MS = 30 * DAY_MS
START_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def observations(states: list[tuple[bytes, dict[str, Any]]]) -> list[Observation]:
    counted: dict[bytes, dict[str, Any]] = defaultdict(metrics_rules.new_counted)
    return [obs for order_key, state in states
            for obs in metrics_rules.observe(counted[order_key], state)]


def recompute(states: list[tuple[bytes, dict[str, Any]]]) -> dict[bytes, dict[str, Any]]:
    """Every window (key -> WindowedMetric) the pure rules give for the states (topic order
    per order), none of them late."""
    windows: dict[bytes, tuple[dict[str, Any], str, int, int]] = {}
    for obs in observations(states):
        for placement in place(obs, None, GRACE_MS):
            entry = windows.setdefault(placement.key, (
                new_aggregate(dict(obs.labels)), obs.name, placement.size_ms,
                placement.start_ms))
            add_observation(entry[0], metrics_rules.METRICS[obs.name], obs.count, obs.value)
    return {key: to_windowed_metric(name, metrics_rules.METRICS[name], size, start, agg)
            for key, (agg, name, size, start) in windows.items()}


def _states(settings: Settings, names: TopicNames) -> list[tuple[bytes, dict[str, Any]]]:
    decoder = WireDecoder.for_record(RegistrySchemaSource(settings.registry_url),
                                     "FulfillmentState")
    out = []
    for _, _, key, value in read_topic(settings.bootstrap_servers, names.fulfillment_states):
        assert key is not None and value is not None
        out.append((key, decoder.decode(value)))
    return out


def _emitted(settings: Settings, names: TopicNames) -> list[dict[str, Any]]:
    decoder = WireDecoder.for_record(RegistrySchemaSource(settings.registry_url),
                                     "WindowedMetric")
    return [decoder.decode(value) for _, _, _, value in
            read_topic(settings.bootstrap_servers, names.fulfillment_metrics) if value]


def _settle(settings: Settings, topics: tuple[str, ...], worker: Any) -> None:
    """Until the group has read every topic to its end and no topic grew meanwhile: each
    stage feeds the next, so one zero-lag moment of the inputs is not the end of the flow."""
    before: dict[tuple[str, int], int] = {}
    while True:
        wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, topics, workers=[worker])
        ends = end_offsets(settings.bootstrap_servers, topics)
        if ends == before:
            return
        before = ends


def _identity(record: dict[str, Any]) -> tuple[str, str, int, int]:
    return (record["name"], record["group_key"], record["window_start"], record["window_end"])


def _produce(settings: Settings, config: GeneratorConfig) -> None:
    produce_to_kafka(generate(config).events, bootstrap=settings.bootstrap_servers,
                     registry_url=settings.registry_url, topic_prefix=settings.topic_prefix,
                     partitions=settings.partitions)


def test_windows_equal_the_pure_recomputation_once_each_and_expire(
    app_settings: Settings, start_worker: StartWorker
) -> None:
    settings = app_settings
    names = TopicNames.with_prefix(settings.topic_prefix)
    # What the worker consumes: the inputs and (the windows agent) the observations.
    derived_topics = (*names.inputs, observations_topic(settings.app_id))
    port = free_port()
    worker = start_worker(FSTREAMS_METRICS_GRACE_MS=str(GRACE_MS), FSTREAMS_WEB_PORT=str(port))
    _produce(settings, GeneratorConfig(orders=80, seed=11, start_ms=START_MS,
                                       span_ms=3 * HOUR_MS))
    _settle(settings, derived_topics, worker)
    first = _states(settings, names)
    assert _emitted(settings, names) == []  # within grace: nothing is final yet

    # Traffic two months later moves stream time past every window's close.
    _produce(settings, GeneratorConfig(orders=3, seed=12, start_ms=START_MS + 60 * DAY_MS,
                                       span_ms=HOUR_MS))
    _settle(settings, derived_topics, worker)
    states = _states(settings, names)
    expected_all = recompute(states)
    now = max(obs.event_ms for obs in observations(states))  # the windows' stream time
    closed = {k: r for k, r in expected_all.items()
              if close_time(r["window_end"], GRACE_MS) <= now}
    assert closed == recompute(first)  # exactly the first traffic's windows are final

    def emitted_all() -> bool:
        return len(_emitted(settings, names)) >= len(closed)
    worker.wait_until(emitted_all, timeout=60, what="every closed window emitted")
    emitted = _emitted(settings, names)
    counts = Counter(_identity(r) for r in emitted)
    assert max(counts.values()) == 1  # each (name, group, window) exactly once
    assert {_identity(r): r for r in emitted} == {_identity(r): r for r in closed.values()}
    assert all(r["late_events"] == 0 for r in emitted)
    names_seen = {r["name"] for r in emitted}
    assert {"orders_accepted", "units_shipped", "shipment_exception_rate",
            "order_to_ship_ms"} <= names_seen

    # The table does not grow: every emitted window's last changelog record is a tombstone,
    # and what is left are the windows still open (the later traffic's).
    last: dict[bytes, bytes | None] = {}
    for _, _, key, value in read_topic(settings.bootstrap_servers,
                                       changelog_topic(settings.app_id, WINDOWS_TABLE)):
        assert key is not None
        last[key] = value
    assert set(closed) <= set(last)
    assert all(last[key] is None for key in closed)
    assert {k for k, v in last.items() if v is not None} == set(expected_all) - set(closed)

    # Late beyond grace: traffic of the first days again (new orders) is counted in
    # late_events, in the windows of the stream time at arrival, never silently dropped.
    _produce(settings, GeneratorConfig(orders=2, seed=13, start_ms=START_MS, span_ms=HOUR_MS))
    _settle(settings, derived_topics, worker)
    known = {key for key, _ in states}
    late = observations([(k, st) for k, st in _states(settings, names) if k not in known])
    assert late and all(obs.event_ms < now - GRACE_MS for obs in late)
    late_windows: dict[bytes, bytes | None] = {}
    for _, _, key, value in read_topic(settings.bootstrap_servers,
                                       changelog_topic(settings.app_id, WINDOWS_TABLE)):
        if key is not None and key.startswith(b"late_events|"):
            late_windows[key] = value
    late_counts: Counter[int] = Counter()
    for key, value in late_windows.items():
        assert value is not None  # still open: its stream time has not passed
        late_counts[parse_window_key(key)[2]] += json.loads(value)["late"]
    assert late_counts == {size: len(late) for size in WINDOW_SIZES_MS}

    # The query API serves the emitted windows; bad parameters are a JSON 400.
    url = f"http://127.0.0.1:{port}/metrics/windows"
    hourly = [r for r in emitted if r["name"] == "orders_accepted"
              and r["window_end"] - r["window_start"] == HOUR_MS]
    some = hourly[0]
    answer = httpx.get(url, params={"name": "orders_accepted", "group": some["group_key"],
                                    "from": some["window_start"], "to": some["window_end"]},
                       timeout=10).json()
    assert some in answer["windows"] and answer["count"] == len(answer["windows"])
    assert all(r["name"] == "orders_accepted" and r["group_key"] == some["group_key"]
               for r in answer["windows"])
    for params in ({"name": "no_such_metric"}, {"from": "yesterday"}, {"from": 2, "to": 1}):
        bad = httpx.get(url, params=params, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["status"] == 400
