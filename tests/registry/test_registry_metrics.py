"""The request counters and latency histograms kept as plain numbers read back as Prometheus."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from registry.metrics import LATENCY_BUCKETS, RegistryMetrics


def samples(metrics: RegistryMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_are_counted_by_route_method_and_status() -> None:
    metrics = RegistryMetrics(lambda: 3, lambda: 2, lambda: 1)
    for status in (200, 200, 404):
        metrics.observe("/schemas/ids/{id}", "GET", status, 0.0001)
    metrics.observe("/subjects/{subject}", "POST", 200, 0.0001)
    got = samples(metrics)

    def count(route: str, method: str, status: str) -> float:
        key = (("method", method), ("route", route), ("status", status))
        return got[("fstreams_registry_http_requests_total", key)]

    assert count("/schemas/ids/{id}", "GET", "200") == 2
    assert count("/schemas/ids/{id}", "GET", "404") == 1
    assert count("/subjects/{subject}", "POST", "200") == 1
    assert got[("fstreams_registry_schemas", ())] == 3
    assert got[("fstreams_registry_is_writer", ())] == 1


def test_latency_buckets_are_cumulative_upper_bounds() -> None:
    metrics = RegistryMetrics(lambda: 0, lambda: 0, lambda: 0)
    # A value equal to a bound belongs to that bucket (le), one above it to the next.
    for seconds in (0.0005, 0.0006, 0.003, 7.0):
        metrics.observe("/schemas/ids/{id}", "GET", 200, seconds)
    got = samples(metrics)
    labels = (("method", "GET"), ("route", "/schemas/ids/{id}"))
    name = "fstreams_registry_http_request_duration_seconds"

    def bucket(le: str) -> float:
        return got[(f"{name}_bucket", (("le", le), *labels))]

    assert bucket("0.0005") == 1
    assert bucket("0.001") == 2
    assert bucket("0.0025") == 2
    assert bucket("0.005") == 3
    assert bucket(str(LATENCY_BUCKETS[-1])) == 3
    assert bucket("+Inf") == 4
    assert got[(f"{name}_count", labels)] == 4
    assert abs(got[(f"{name}_sum", labels)] - 7.0041) < 1e-9
