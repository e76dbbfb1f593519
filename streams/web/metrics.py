"""`GET /metrics`: Prometheus text exposition of the worker.

The agents keep plain integer counters (cheap on the hot path) in `pipeline.services
["counters"]`; this collector turns them, the consumer lag Faust's monitor tracks, table sizes
and readiness into metrics at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.app import Pipeline
from streams.web.health import is_ready

# aiohttp takes the charset separately; Prometheus reads text/plain version 0.0.4 as UTF-8.
CONTENT_TYPE_HEADERS = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


class PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        counters = pipeline.services.get("counters", {})
        inputs = set(pipeline.names.inputs)
        consumed = CounterMetricFamily("fstreams_events_consumed", "input events consumed",
                                       labels=["topic"])
        for topic in sorted(inputs):
            consumed.add_metric([topic], counters.get(topic, 0))
        yield consumed
        for name, help_text in (("states_emitted", "canonical states emitted"),
                                ("dead_lettered", "records sent to the dead-letter topic"),
                                ("mismatch_records", "reconciliation records emitted"),
                                ("alert_records", "SLA alert records emitted")):
            yield CounterMetricFamily(f"fstreams_{name}", help_text, value=counters.get(name, 0))
        yield from self._by_label(counters, "mismatches", "fstreams_mismatch_transitions",
                                  "reconciliation records emitted", ("category", "status"))
        yield from self._by_label(counters, "alerts", "fstreams_alert_transitions",
                                  "SLA alert records emitted", ("rule", "state"))
        evaluated = counters.get("reconciled", {})
        total = sum(evaluated.values())
        rate = GaugeMetricFamily("fstreams_reconciliation_match_ratio",
                                 "share of order evaluations whose money fully matched")
        rate.add_metric([], evaluated.get("yes", 0) / total if total else 0.0)
        yield rate
        yield from self._lag()
        yield from self._tables()
        ready = GaugeMetricFamily("fstreams_ready", "1 when tables are recovered and consuming")
        ready.add_metric([], 1.0 if is_ready(pipeline) else 0.0)
        yield ready

    @staticmethod
    def _by_label(counters: dict[str, Any], family: str, name: str, help_text: str,
                  labels: tuple[str, str]) -> Iterator[Metric]:
        metric = CounterMetricFamily(name, help_text, labels=list(labels))
        for label, value in sorted(counters.get(family, {}).items()):
            metric.add_metric(label.split("|", 1), value)
        yield metric

    def _lag(self) -> Iterator[Metric]:
        monitor = self.pipeline.app.monitor
        lag = GaugeMetricFamily("fstreams_consumer_lag", "end offset - last read offset",
                                labels=["topic", "partition"])
        ends = monitor.tp_end_offsets or {}
        read = monitor.tp_read_offsets or {}
        for tp, end in sorted(ends.items()):
            position = read.get(tp)
            if position is not None:
                lag.add_metric([tp.topic, str(tp.partition)], max(0, end - position - 1))
        yield lag

    def _tables(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("fstreams_table_keys", "estimated keys per table",
                                 labels=["table"])
        for name, table in self.pipeline.app.tables.items():
            store = table.data
            estimate = 0
            for db in getattr(store, "_dbs", {}).values():
                try:
                    estimate += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
                except Exception:  # a closing DB during rebalance: skip, next scrape has it
                    continue
            size.add_metric([name], estimate)
        yield size


def register(pipeline: Pipeline) -> None:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    pipeline.services["metrics_registry"] = registry

    @pipeline.app.page("/metrics", name="metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.bytes(generate_latest(registry), headers=CONTENT_TYPE_HEADERS)
