"""Prometheus metrics: requests by route/method/status, latency, and registry contents.

Each app owns its own ``CollectorRegistry`` so several registries can live in one process (tests)
without colliding in the global default registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class RegistryMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        schemas: Callable[[], float],
        subjects: Callable[[], float],
        is_writer: Callable[[], float],
    ) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "fstreams_registry_http_requests", "HTTP requests by route, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self._latency = Histogram(
            "fstreams_registry_http_request_duration_seconds", "HTTP request latency by route",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        Gauge("fstreams_registry_schemas", "schemas (global ids) in the registry",
              registry=self.registry).set_function(schemas)
        Gauge("fstreams_registry_subjects", "subjects with at least one live version",
              registry=self.registry).set_function(subjects)
        Gauge("fstreams_registry_is_writer", "1 if this instance is the elected writer",
              registry=self.registry).set_function(is_writer)
        # labels() costs a lock and a dict lookup each time; the hot path reuses children.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._requests.labels(route, method, str(status))
            self._counters[(route, method, status)] = counter
        counter.inc()
        histogram = self._histograms.get((route, method))
        if histogram is None:
            histogram = self._latency.labels(route, method)
            self._histograms[(route, method)] = histogram
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
