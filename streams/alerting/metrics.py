"""Prometheus metrics of webhook delivery (``fstreams alerts deliver``), per receiver.

Delivery runs in its own process, so it serves its own ``GET /metrics`` when
``FSTREAMS_ALERTING_METRICS_PORT`` is set; the counters are ``DeliveryStats`` (plain ints the
pumps keep). Receivers come from configuration, so the ``receiver`` label is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.alerting.breaker import OPEN
from streams.alerting.stats import DeliveryStats

# Outcomes of one alert record at one receiver (stats.COUNTERS minus the attempt count).
OUTCOMES = ("delivered", "failed", "silenced", "undecodable")


class DeliveryCollector(Collector):
    def __init__(self, stats: DeliveryStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        receivers = sorted(self.stats.receivers.items())
        records = CounterMetricFamily(
            "fstreams_alert_deliveries", "alert records handled per receiver, by outcome "
            "(failed = given up: rejected, or still failing at the give-up age)",
            labels=["receiver", "outcome"])
        retried = CounterMetricFamily("fstreams_alert_delivery_retries",
                                      "delivery attempts after the first one",
                                      labels=["receiver"])
        opened = CounterMetricFamily("fstreams_alert_breaker_opened",
                                     "times the receiver's circuit breaker opened",
                                     labels=["receiver"])
        is_open = GaugeMetricFamily("fstreams_alert_breaker_open",
                                    "1 while the receiver's circuit breaker is open",
                                    labels=["receiver"])
        for name, receiver in receivers:
            for outcome in OUTCOMES:
                records.add_metric([name, outcome], getattr(receiver, outcome))
            retried.add_metric([name], receiver.retried)
            opened.add_metric([name], receiver.breaker_opened)
            is_open.add_metric([name], 1.0 if receiver.breaker_state == OPEN else 0.0)
        yield records
        yield retried
        yield opened
        yield is_open
        silences = GaugeMetricFamily("fstreams_alert_silences_loaded",
                                     "silences known after the last re-read")
        silences.add_metric([], self.stats.silences_loaded)
        yield silences


class MetricsServer:
    """``GET /metrics`` over aiohttp, in the delivery process's event loop."""

    def __init__(self, stats: DeliveryStats, host: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(DeliveryCollector(stats))
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
