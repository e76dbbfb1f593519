"""The query API on two workers: any worker answers any order (table routing), errors are
JSON 4xx, health and Prometheus metrics tell the truth about a known traffic run."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from streams.broker.launcher import free_port
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.procs import ChildProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import end_offsets, wait_for_zero_lag

pytestmark = pytest.mark.broker


def _wait_ready(url: str, worker: ChildProcess, timeout: float = 90.0) -> None:
    worker.wait_until(lambda: _status(f"{url}/readyz") == 200, timeout=timeout, what="ready")


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return 0


def _metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}(?:_total)?{{{re.escape(selector)}}} (\S+)$" if labels else \
        rf"^{name}(?:_total)? (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name} {labels} not in /metrics"
    return float(match.group(1))


def test_any_worker_answers_any_order(app_settings: Settings, start_worker: StartWorker) -> None:
    settings = app_settings
    names = TopicNames.with_prefix(settings.topic_prefix)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    workers = [start_worker(f"worker-{i + 1}", FSTREAMS_WEB_PORT=str(p))
               for i, p in enumerate(ports)]
    for url, worker in zip(urls, workers, strict=True):
        _wait_ready(url, worker)

    generated = generate(GeneratorConfig(orders=40, seed=5))
    produced = produce_to_kafka(generated.events, bootstrap=settings.bootstrap_servers,
                                registry_url=settings.registry_url,
                                topic_prefix=settings.topic_prefix,
                                partitions=settings.partitions)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names.inputs,
                      workers=workers)

    truth = generated.truth.orders
    with httpx.Client(timeout=10.0) as client:
        for order_id, expected in truth.items():
            for url in urls:  # one of the two does not own the order and forwards
                state = client.get(f"{url}/orders/{order_id}")
                assert state.status_code == 200, (url, order_id, state.text)
                assert state.json()["fulfillment_status"] == expected["fulfillment_status"]
            timeline = client.get(f"{urls[1]}/orders/{order_id}/timeline").json()
            assert len(timeline["events"]) == expected["event_count"]
            times = [e["event_time"] for e in timeline["events"]]
            assert times == sorted(times)

        missing = client.get(f"{urls[0]}/orders/no-such-order")
        assert missing.status_code == 404
        assert "not found" in missing.json()["error"]["message"]
        bad = client.get(f"{urls[0]}/orders/{'x' * 200}")
        assert bad.status_code == 400 and "order_id" in bad.json()["error"]["message"]
        unknown = client.get(f"{urls[0]}/no/such/route")
        assert unknown.status_code == 404 and unknown.json()["error"]["status"] == 404

        spec = client.get(f"{urls[0]}/openapi.json").json()
        assert "/orders/{order_id}" in spec["paths"]

        # Metrics of both workers add up to exactly what was produced (no rebalance happened
        # while consuming, so nothing was processed twice).
        deadline = time.monotonic() + 10
        texts = [client.get(f"{url}/metrics").text for url in urls]
        ends = end_offsets(settings.bootstrap_servers, names.inputs)
        while time.monotonic() < deadline:
            consumed = sum(_metric(text, "fstreams_events_consumed", topic=topic)
                           for text in texts for topic in names.inputs)
            if consumed == sum(ends.values()):
                break
            texts = [client.get(f"{url}/metrics").text for url in urls]
        assert consumed == sum(ends.values()) == produced
        dead = sum(_metric(text, "fstreams_dead_lettered") for text in texts)
        assert dead == generated.truth.dead_letters["count"]
        assert all(_metric(text, "fstreams_ready") == 1.0 for text in texts)
