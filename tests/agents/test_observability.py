"""Observability on the real broker: a known generated traffic run, then the worker's
/metrics, /overview and JSON logs are checked against what was produced and against the pure
oracle; a second worker joins and both answer the same /overview, before and after more
traffic arrives, from censuses that moved with their partitions."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.broker.launcher import free_port
from streams.generator.build import Generated, generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.procs import ChildProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tables import census as tally
from tests.agents.conftest import StartWorker
from tests.agents.oracle import oracle_records
from tests.kafka_helpers import end_offsets, wait_for_zero_lag

pytestmark = pytest.mark.broker

STABLE = ("orders_by_status", "orders_total", "consumer_lag", "dead_letters", "firing_alerts",
          "complete", "partitions_missing")


def produce(settings: Settings, generated: Generated) -> int:
    return produce_to_kafka(generated.events, bootstrap=settings.bootstrap_servers,
                            registry_url=settings.registry_url,
                            topic_prefix=settings.topic_prefix, partitions=settings.partitions)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"{name} {labels} not in /metrics")


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if match:
            out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(1))))] = float(
                match.group(2))
    return out


def expected_overview(settings: Settings, dead_letters: int) -> dict[str, Any]:
    """What /overview must say once the group caught up: a recount of the oracle's records."""
    recount = tally.recount(oracle_records(settings).values())
    return {"orders_by_status": dict(tally.statuses(recount)),
            "orders_total": tally.orders_total(recount), "consumer_lag": 0,
            "dead_letters": dead_letters, "firing_alerts": recount["firing_alerts"],
            "complete": True, "partitions_missing": []}


def stable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in STABLE}


def poll(what: str, check: Callable[[], bool], workers: list[ChildProcess],
         timeout: float = 60.0) -> None:
    """Until `check()` holds (the last timers fire on the agent's 1 s tick after the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.running, f"{worker.name} died{worker._log_hint()}"
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"not {what} within {timeout}s")


def wait_ready(url: str, worker: ChildProcess) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False
    worker.wait_until(ready, timeout=120, what="ready")


def _roster(body: dict[str, Any]) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    return tuple((w["id"], w["url"], tuple(w["partitions"])) for w in body["workers"])


def json_lines(path: Path) -> list[dict[str, Any]]:
    docs = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            docs.append(json.loads(raw))
    return docs


def test_metrics_overview_and_logs_tell_the_truth(app_settings: Settings,
                                                  start_worker: StartWorker,
                                                  tmp_path: Path) -> None:
    settings = app_settings
    names = TopicNames.with_prefix(settings.topic_prefix)
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    first = start_worker("worker-1", FSTREAMS_WEB_PORT=urls[0].rsplit(":", 1)[1],
                         FSTREAMS_LOG_FORMAT="json")
    wait_ready(urls[0], first)

    # A known run: bad records of every kind (undecodable ones included), duplicates, late
    # and out-of-order events, SLA breaches.
    run_a = generate(GeneratorConfig(orders=60, seed=4242, raw_garbage=True))
    produce(settings, run_a)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=[first])
    dead_a = run_a.truth.dead_letters["count"]
    assert dead_a > 0

    client = httpx.Client(timeout=10.0)
    expected = expected_overview(settings, dead_a)
    bodies: list[dict[str, Any]] = []
    poll("the overview equal to the oracle", lambda: bodies.append(
        client.get(f"{urls[0]}/overview").json()) or stable(bodies[-1]) == expected,
        [first])
    body = bodies[-1]
    assert body["orders_total"] > 0 and body["firing_alerts"] > 0
    assert [(w["id"], w["partitions"]) for w in body["workers"]] == [
        ("worker-1", list(range(settings.partitions)))]
    spec = client.get(f"{urls[0]}/openapi.json").json()
    assert {"/overview", "/overview/local"} <= set(spec["paths"])

    text = client.get(f"{urls[0]}/metrics").text
    ends = end_offsets(settings.bootstrap_servers, names.inputs)
    for topic in names.inputs:  # consumed per topic = what the topic holds
        assert metric(text, "fstreams_events_consumed_total", topic=topic) == sum(
            n for (t, _), n in ends.items() if t == topic)
    consumed = sum(ends.values())
    assert metric(text, "fstreams_dead_lettered_total") == dead_a
    by_category = samples(text, "fstreams_dead_letters_total")
    assert sum(by_category.values()) == dead_a
    stages = {dict(labels)["stage"] for labels in by_category}
    assert stages == {"decode", "validate"}
    assert metric(text, "fstreams_events_processed_total") == consumed - dead_a
    # One latency observation per emitted state, in cumulative buckets ending at +Inf.
    states = metric(text, "fstreams_states_emitted_total")
    assert states > 0
    assert metric(text, "fstreams_processing_latency_seconds_count") == states
    assert metric(text, "fstreams_processing_latency_seconds_bucket", le="+Inf") == states
    buckets = [v for k, v in samples(text, "fstreams_processing_latency_seconds_bucket").items()]
    assert buckets == sorted(buckets)
    assert metric(text, "fstreams_processing_latency_seconds_sum") > 0
    for p in range(settings.partitions):
        for topic in names.inputs:
            assert metric(text, "fstreams_consumer_lag", topic=topic, partition=str(p)) == 0
        assert metric(text, "fstreams_table_keys", table="order-state", partition=str(p)) > 0
    for status, n in body["orders_by_status"].items():
        assert metric(text, "fstreams_orders", status=status) == n
    assert metric(text, "fstreams_firing_alerts") == body["firing_alerts"]
    assert metric(text, "fstreams_recovery_remaining", kind="active") == 0
    # Idle: every output acknowledged, nothing held. Reports of the last timer step's outputs
    # are served by the next tick (1 s), so the gauges settle rather than read 0 at once.
    sink_gauges: list[str] = [text]
    poll("the output sink settled", lambda: sink_gauges.append(
        client.get(f"{urls[0]}/metrics").text) or all(
        metric(sink_gauges[-1], "fstreams_sink_records", state=state) == 0
        for state in ("in_flight", "held")), [first])
    metric(text, "fstreams_recovery_restored", kind="active")  # present

    # Every dead letter's log line names the record; a decodable one its correlation id.
    logged = [doc for doc in json_lines(tmp_path / "worker-1.log")
              if doc["msg"].startswith("dead-lettered")]
    assert len(logged) == dead_a  # a handful: within the 20-lines-a-second log budget
    for doc in logged:
        assert doc["order_id"] and doc["topic"] in names.inputs
        assert isinstance(doc["offset"], int) and isinstance(doc["partition"], int)
        assert doc["correlation_id"] or doc["stage"] == "decode", doc
    assert any(doc["stage"] == "validate" and doc["correlation_id"] for doc in logged)

    # A second worker joins: partitions move with their censuses (read from the table, not
    # recounted), and either worker answers the same overview for the whole cluster.
    second = start_worker("worker-2", FSTREAMS_WEB_PORT=urls[1].rsplit(":", 1)[1])
    wait_ready(urls[1], second)
    workers = [first, second]

    def both_agree(expected: dict[str, Any]) -> bool:
        answers = [client.get(f"{url}/overview").json() for url in urls]
        owned = [sorted(w["id"] for w in a["workers"] if w["partitions"]) for a in answers]
        return (all(stable(a) == expected for a in answers)
                and owned == [["worker-1", "worker-2"]] * 2
                and len({_roster(a) for a in answers}) == 1)

    poll("both workers' overviews equal to the oracle", lambda: both_agree(expected), workers,
         timeout=90)

    run_b = generate(GeneratorConfig(orders=40, seed=4343))
    produce(settings, run_b)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=workers)
    expected = expected_overview(settings, dead_a + run_b.truth.dead_letters["count"])
    assert expected["orders_total"] > body["orders_total"]
    poll("both overviews equal to the oracle after more traffic",
         lambda: both_agree(expected), workers, timeout=90)
    local = client.get(f"{urls[1]}/overview/local").json()
    assert local["worker_id"] == "worker-2" and local["partitions"]
    assert set(local["census"]) == {str(p) for p in local["partitions"]}
