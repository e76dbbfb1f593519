"""Prometheus metrics: requests by route/method/status, latency, and registry contents.

Each app owns its own ``CollectorRegistry`` so several registries can live in one process (tests)
without colliding in the global default registry.

Request counts and latencies are plain integers and floats on the hot path, turned into
Prometheus families only when scraped: a ``Counter``/``Histogram`` child takes a lock and several
calls per update, which cost about 5 us of the roughly 100 us an id lookup takes. The whole
registry runs on one event loop thread, so nothing here needs a lock.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
REQUESTS = "fstreams_registry_http_requests"
LATENCY = "fstreams_registry_http_request_duration_seconds"


class _Latency:
    """One route's latency histogram: a count per bucket (the last one is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def cumulative(self) -> list[tuple[str, float]]:
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        running, out = 0, []
        for bound, count in zip(bounds, self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class RequestStats(Collector):
    """HTTP request counts by (route, method, status) and latency histograms by (route, method)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._created: dict[tuple[str, str, int], float] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        count = self._counts.get(key)
        if count is None:
            self._created[key] = time.time()
            count = 0
        self._counts[key] = count + 1
        latency = self._latency.get((route, method))
        if latency is None:
            latency = self._latency[(route, method)] = _Latency()
        # Buckets are upper bounds (le): the first bound >= seconds takes the observation.
        latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(REQUESTS, "HTTP requests by route, method and status",
                                       labels=["route", "method", "status"])
        for (route, method, status), count in sorted(self._counts.items()):
            created = self._created[(route, method, status)]
            requests.add_metric([route, method, str(status)], count, created=created)
        yield requests
        latency = HistogramMetricFamily(
            LATENCY, "HTTP request latency by route", labels=["route", "method"])
        for (route, method), histogram in sorted(self._latency.items()):
            latency.add_metric([route, method], histogram.cumulative(), histogram.total)
        yield latency


class RegistryMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        schemas: Callable[[], float],
        subjects: Callable[[], float],
        is_writer: Callable[[], float],
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestStats()
        self.registry.register(self.requests)
        Gauge("fstreams_registry_schemas", "schemas (global ids) in the registry",
              registry=self.registry).set_function(schemas)
        Gauge("fstreams_registry_subjects", "subjects with at least one live version",
              registry=self.registry).set_function(subjects)
        Gauge("fstreams_registry_is_writer", "1 if this instance is the elected writer",
              registry=self.registry).set_function(is_writer)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.observe(route, method, status, seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
