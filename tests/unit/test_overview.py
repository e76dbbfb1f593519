"""The pure parts of observability: how workers' overview parts add up, the events/s meter,
the latency histogram, and the delivery counters as Prometheus metrics."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.alerting.breaker import OPEN
from streams.alerting.metrics import DeliveryCollector, MetricsServer
from streams.alerting.stats import DeliveryStats
from streams.broker.launcher import free_port
from streams.histogram import Histogram
from streams.overview import RateMeter, merge_parts


def part(url: str, census: dict[int, dict[str, Any] | None], **extra: Any) -> dict[str, Any]:
    return {"url": url, "census": {str(p): c for p, c in census.items()},
            "events_per_second": 10.0, "consumer_lag": 5, **extra}


def census(firing: int = 0, **orders: int) -> dict[str, Any]:
    return {"orders": orders, "firing_alerts": firing}


def test_each_partition_is_counted_once_from_its_owner() -> None:
    a = part("http://a:1", {0: census(shipped=2), 1: census(1, accepted=1)})
    # b still reports partition 1 (a rebalance moved it to a): the owner's count wins.
    b = part("http://b:1", {1: census(9, accepted=9), 2: census(delivered=3), 3: census()})
    out = merge_parts([a, b], {0: "http://a:1", 1: "http://a:1", 2: "http://b:1",
                               3: "http://b:1"}, partitions=4)
    assert out["orders_by_status"] == {"accepted": 1, "delivered": 3, "shipped": 2}
    assert out["orders_total"] == 6 and out["firing_alerts"] == 1
    assert out["events_per_second"] == 20.0 and out["consumer_lag"] == 10
    assert out["complete"] and out["partitions_missing"] == []


def test_an_unreported_partition_is_missing_not_zero() -> None:
    a = part("http://a:1", {0: census(shipped=2), 1: None})  # 1: not known there yet
    out = merge_parts([a], {0: "http://a:1", 1: "http://a:1", 2: "http://b:1"}, partitions=3)
    assert out["orders_total"] == 2
    assert out["partitions_missing"] == [1, 2] and not out["complete"]


def test_without_an_assignment_any_reporting_worker_counts() -> None:
    a = part("http://a:1", {0: census(picked=1), 1: census(packed=1)})
    out = merge_parts([a], {}, partitions=2)
    assert out["orders_by_status"] == {"packed": 1, "picked": 1} and out["complete"]


def test_rate_over_a_sliding_window() -> None:
    meter = RateMeter(window_s=10.0)
    assert meter.rate() == 0.0
    meter.sample(0.0, 0)
    assert meter.rate() == 0.0  # one sample: no rate yet
    for t in range(1, 31):
        meter.sample(float(t), t * 100 if t <= 20 else 2000)  # 100/s, then idle
    assert meter.rate() == pytest.approx(0.0, abs=1e-9)  # the last 10 s were idle
    meter.sample(31.0, 2500)
    assert meter.rate() == pytest.approx(500 / 10)  # over the last 10 s: 21 s .. 31 s
    meter.sample(32.0, 10)  # the counters restarted (a new process)
    assert meter.rate() == 0.0


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram((10, 100, 1000))
    for value in (0, 10, 11, 100, 5000, -3):
        h.observe(value)
    assert h.cumulative() == [(10, 3), (100, 5), (1000, 5), (None, 6)]
    assert h.count == 6 and h.sum == 5118
    with pytest.raises(ValueError):
        Histogram((10, 10, 20))


def test_delivery_counters_as_prometheus_metrics() -> None:
    stats = DeliveryStats()
    am = stats.receiver("alertmanager-am-1")
    am.delivered, am.failed, am.retried, am.silenced = 7, 1, 4, 2
    am.breaker_state, am.breaker_opened = OPEN, 3
    stats.receiver("pagerduty-pd-1").delivered = 5
    registry = CollectorRegistry()
    registry.register(DeliveryCollector(stats))
    text = generate_latest(registry).decode()
    expected = [
        '# TYPE fstreams_alert_deliveries_total counter',
        'fstreams_alert_deliveries_total{outcome="delivered",receiver="alertmanager-am-1"} 7.0',
        'fstreams_alert_deliveries_total{outcome="failed",receiver="alertmanager-am-1"} 1.0',
        'fstreams_alert_deliveries_total{outcome="delivered",receiver="pagerduty-pd-1"} 5.0',
        'fstreams_alert_delivery_retries_total{receiver="alertmanager-am-1"} 4.0',
        'fstreams_alert_breaker_opened_total{receiver="alertmanager-am-1"} 3.0',
        'fstreams_alert_breaker_open{receiver="alertmanager-am-1"} 1.0',
        'fstreams_alert_breaker_open{receiver="pagerduty-pd-1"} 0.0',
    ]
    for line in expected:
        assert line in text.splitlines(), line


async def test_delivery_serves_its_metrics_over_http() -> None:
    stats = DeliveryStats()
    stats.receiver("alertmanager-am-1").delivered = 2
    server = MetricsServer(stats, "127.0.0.1", free_port())
    await server.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{server.port}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await resp.text()
    finally:
        await server.stop()
    assert ('fstreams_alert_deliveries_total{outcome="delivered",receiver="alertmanager-am-1"}'
            ' 2.0') in text
