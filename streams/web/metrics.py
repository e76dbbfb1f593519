"""`GET /metrics`: Prometheus text exposition of the worker.

The agents keep plain integer counters (cheap on the hot path) in `pipeline.services
["counters"]`, a fixed-bucket latency histogram in `services["latency"]` and each partition's
census in `services["census"]`; this collector turns them, the consumer lag, table sizes,
recovery progress and readiness into metrics at scrape time. Every label has a bounded set of
values: input topics, partitions, statuses, rules, categories, pipeline stages, error classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streams.app import Pipeline
from streams.histogram import Histogram
from streams.lag import input_lag
from streams.overview import local_censuses
from streams.web.health import is_ready
from tables import census as tally

# aiohttp takes the charset separately; Prometheus reads text/plain version 0.0.4 as UTF-8.
CONTENT_TYPE_HEADERS = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
RECOVERY_KINDS = ("active", "standby")


class RecoveryProgress:
    """Changelog records restored since the last assignment, from Faust's recovery offsets.

    Faust keeps, per changelog partition, the offset recovered so far and the highwater to
    reach; it does not count what it restored. The offsets at each assignment are the start
    line, so restored = offset now - offset then (compacted-away offsets count as restored:
    an approximation that errs high on compacted changelogs).
    """

    def __init__(self, recovery: Any) -> None:
        self.recovery = recovery
        self._start: dict[str, dict[Any, int]] = {kind: {} for kind in RECOVERY_KINDS}

    def on_assigned(self) -> None:
        for kind in RECOVERY_KINDS:
            self._start[kind] = {tp: -1 if offset is None else offset
                                 for tp, offset in self._offsets(kind).items()}

    def restored(self, kind: str) -> int:
        start = self._start[kind]
        return sum(max(0, offset - start.get(tp, -1))
                   for tp, offset in self._offsets(kind).items() if offset is not None)

    def remaining(self, kind: str) -> int:
        recovery = self.recovery
        total = (recovery.active_remaining_total() if kind == "active"
                 else recovery.standby_remaining_total())
        return max(0, int(total))

    def _offsets(self, kind: str) -> dict[Any, int | None]:
        offsets = (self.recovery.active_offsets if kind == "active"
                   else self.recovery.standby_offsets)
        return dict(offsets)


class PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline, recovery: RecoveryProgress | None = None) -> None:
        self.pipeline = pipeline
        self.recovery = recovery

    def collect(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        counters = pipeline.services.get("counters", {})
        inputs = set(pipeline.names.inputs)
        consumed = CounterMetricFamily("fstreams_events_consumed", "input events consumed",
                                       labels=["topic"])
        for topic in sorted(inputs):
            consumed.add_metric([topic], counters.get(topic, 0))
        yield consumed
        for name, help_text in (
                ("events_processed", "input events folded into order records (consumed and "
                                     "not dead-lettered; redelivered duplicates included)"),
                ("states_emitted", "canonical states emitted"),
                ("dead_lettered", "records sent to the dead-letter topic"),
                ("mismatch_records", "reconciliation records emitted"),
                ("alert_records", "SLA alert records emitted")):
            yield CounterMetricFamily(f"fstreams_{name}", help_text, value=counters.get(name, 0))
        yield from self._by_label(counters, "dead_letters", "fstreams_dead_letters",
                                  "records sent to the dead-letter topic, by input topic, "
                                  "pipeline stage and error class",
                                  ("topic", "stage", "error_class"))
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
        latency = pipeline.services.get("latency")
        if latency is not None:
            yield self._latency(latency)
        yield from self._census()
        yield from self._lag()
        yield from self._tables()
        yield from self._sink()
        yield from self._recovery()
        ready = GaugeMetricFamily("fstreams_ready", "1 when tables are recovered and consuming")
        ready.add_metric([], 1.0 if is_ready(pipeline) else 0.0)
        yield ready

    @staticmethod
    def _by_label(counters: dict[str, Any], family: str, name: str, help_text: str,
                  labels: tuple[str, ...]) -> Iterator[Metric]:
        metric = CounterMetricFamily(name, help_text, labels=list(labels))
        for label, value in sorted(counters.get(family, {}).items()):
            metric.add_metric(label.split("|", len(labels) - 1), value)
        yield metric

    @staticmethod
    def _latency(histogram: Histogram) -> Metric:
        buckets = [("+Inf" if bound is None else str(bound / 1000), float(n))
                   for bound, n in histogram.cumulative()]
        return HistogramMetricFamily(
            "fstreams_processing_latency_seconds",
            "event time of an order's newest event -> its canonical state emitted, once per "
            "emitted state", buckets=buckets, sum_value=histogram.sum / 1000)

    def _census(self) -> Iterator[Metric]:
        censuses = local_censuses(self.pipeline)
        merged = tally.merge(c for c in censuses.values() if c is not None)
        orders = GaugeMetricFamily("fstreams_orders", "orders in this worker's partitions by "
                                   "fulfillment status (the partitions' census)",
                                   labels=["status"])
        for status, n in tally.statuses(merged):
            orders.add_metric([status], n)
        yield orders
        firing = GaugeMetricFamily("fstreams_firing_alerts",
                                   "SLA alerts firing in this worker's partitions")
        firing.add_metric([], merged["firing_alerts"])
        yield firing

    def _lag(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        lag = GaugeMetricFamily("fstreams_consumer_lag",
                                "input end offset - next offset to process, per partition",
                                labels=["topic", "partition"])
        positions = pipeline.services.get("positions", {})
        for tp, n in sorted(input_lag(pipeline.app, pipeline.names.inputs, positions).items()):
            lag.add_metric([tp.topic, str(tp.partition)], n)
        yield lag

    def _tables(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("fstreams_table_keys",
                                 "estimated keys per table partition (RocksDB "
                                 "estimate-num-keys; deletes are counted until compaction)",
                                 labels=["table", "partition"])
        for name, table in self.pipeline.app.tables.items():
            for partition, db in sorted(getattr(table.data, "_dbs", {}).items()):
                try:
                    estimate = int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
                except Exception:  # a closing DB during rebalance: skip, next scrape has it
                    continue
                size.add_metric([name, str(partition)], estimate)
        yield size

    def _sink(self) -> Iterator[Metric]:
        sink = self.pipeline.services.get("sink")
        if sink is None:
            return
        records = GaugeMetricFamily(
            "fstreams_sink_records", "records of the worker's output producer not yet "
            "acknowledged: in_flight (handed to librdkafka) and held (table changelog records "
            "waiting for the outputs before them, at-least-once); both return to 0 when idle",
            labels=["state"])
        records.add_metric(["in_flight"], sink.in_flight)
        records.add_metric(["held"], sink.held)
        yield records

    def _recovery(self) -> Iterator[Metric]:
        if self.recovery is None:
            return
        remaining = GaugeMetricFamily("fstreams_recovery_remaining",
                                      "changelog records left to restore",
                                      labels=["kind"])
        restored = GaugeMetricFamily("fstreams_recovery_restored",
                                     "changelog records restored since the last rebalance",
                                     labels=["kind"])
        for kind in RECOVERY_KINDS:
            remaining.add_metric([kind], self.recovery.remaining(kind))
            restored.add_metric([kind], self.recovery.restored(kind))
        yield remaining
        yield restored


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    recovery = RecoveryProgress(app.tables.recovery)

    @app.on_partitions_assigned.connect
    async def _recovery_start(app: Any, assigned: Any, **kwargs: Any) -> None:
        recovery.on_assigned()

    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline, recovery))
    pipeline.services["metrics_registry"] = registry

    @app.page("/metrics", name="metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.bytes(generate_latest(registry), headers=CONTENT_TYPE_HEADERS)
