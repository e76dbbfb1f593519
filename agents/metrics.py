"""Windowed metrics for analysts: tumbling 1-minute and 1-hour windows over fulfillment states.

The fulfillment fold takes each emitted state's metric observations (`tables.metrics_rules`,
through `order_pipeline.observe`, counted once per order in the order's own record) and puts
them on a single-partition observations topic (`streams/observations.py` says why one).
The `metrics-windows` agent here folds them into event-time windows (`tables.windows`), one
table value per `name|group|size|start`, and emits each window's WindowedMetric to
`fulfillment-metrics` once, when stream time passes its end plus the grace period; the window
then leaves the table as a tombstone. Observations beyond grace go to `late_events`.

Faust's windowed tables are not used (their expiry is unreliable): closing is driven by our
stream clock and timer keys (`streams/timers.py`), so tests and replays are deterministic.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from faust.types import EventT, TableT

from streams.app import Pipeline
from streams.batching import KeyedBatch, TableWriter
from streams.observations import decode_observations, observations_topic
from streams.timers import TimerIndex
from tables import metrics_rules
from tables.windows import (
    Observation,
    add_late,
    add_observation,
    close_time,
    late_observation,
    new_aggregate,
    parse_window_key,
    place,
    to_windowed_metric,
)

log = logging.getLogger(__name__)
WINDOWS_TABLE = "metric-windows"
WINDOW_TIMERS_TABLE = "metric-window-timers"
OBSERVATIONS = "observations"  # the one input of the windows' stream clock
DEFAULT_GRACE_MS = 10 * 60_000
RECENT_WINDOWS = 10_000  # emitted windows kept in memory for GET /metrics/windows


def grace_ms() -> int:
    """Grace period of every window; FSTREAMS_METRICS_GRACE_MS overrides the default."""
    return int(os.environ.get("FSTREAMS_METRICS_GRACE_MS", DEFAULT_GRACE_MS))


class WindowFolder:
    """A batch of observations -> window aggregates; closed windows -> WindowedMetric."""

    def __init__(self, pipeline: Pipeline, windows: TableT, timers: TimerIndex,
                 grace: int, *, after_outputs: bool = True) -> None:
        services = pipeline.services
        self.windows = windows
        # A closed window's tombstone must not land before its WindowedMetric (see
        # streams/sink.py): killed in between, the metric would never be emitted.
        self.writer = TableWriter(windows, services["sink"], after_outputs=after_outputs)
        self.timers = timers
        self.grace = grace
        self.sink = services["sink"]
        self.counters: dict[str, int] = services.setdefault("counters", {})
        self.topic = pipeline.names.fulfillment_metrics
        self.encode = services["encoders"][self.topic].encode
        self.recent: deque[dict[str, Any]] = services.setdefault(
            "recent_metric_windows", deque(maxlen=RECENT_WINDOWS))

    async def process(self, events: Sequence[EventT]) -> None:
        batch: KeyedBatch[dict[str, Any]] = KeyedBatch(self.windows, self.writer)
        last: EventT | None = None
        for event in events:
            clock = self.timers.clock(event.message.partition, event)
            for obs in decode_observations(event.message.value):
                now = clock.now()  # stream time before this arrival: lateness is judged on it
                for placement in place(obs, now, self.grace):
                    if placement.late and now is not None:  # late implies a stream time
                        self._count_late(batch, obs, now, placement.size_ms, event)
                        continue
                    aggregate = self._window(batch, placement.key, obs.labels,
                                             placement.start_ms + placement.size_ms, event)
                    add_observation(aggregate, metrics_rules.METRICS[obs.name], obs.count,
                                    obs.value)
                    batch.put(placement.key, aggregate, event)
                clock.observe(OBSERVATIONS, obs.event_ms)
            last = event
        if last is not None:
            self._close_due(batch, last)
        batch.flush()
        self.sink.poll()
        self.writer.checkpoint()
        self.timers.writer.checkpoint()

    def _window(self, batch: KeyedBatch[dict[str, Any]], key: bytes,
                labels: tuple[tuple[str, str], ...], end_ms: int,
                event: EventT) -> dict[str, Any]:
        aggregate = batch.get(key, event)
        if aggregate is None:  # a new window: its close is a timer key
            aggregate = new_aggregate(dict(labels))
            self.timers.move(key, None, close_time(end_ms, self.grace), event)
        return aggregate

    def _count_late(self, batch: KeyedBatch[dict[str, Any]], obs: Observation, now: int,
                    size_ms: int, event: EventT) -> None:
        """Count `obs` in `late_events` for the size of the window it missed (a minute
        window can have closed while the hour window still takes the observation)."""
        self.counters["metric_late_events"] = self.counters.get("metric_late_events", 0) + 1
        late = late_observation(obs, now)
        for placement in place(late, now, self.grace, (size_ms,)):
            aggregate = self._window(batch, placement.key, late.labels,
                                     placement.start_ms + placement.size_ms, event)
            add_late(aggregate)
            batch.put(placement.key, aggregate, event)

    def _close_due(self, batch: KeyedBatch[dict[str, Any]], event: EventT) -> None:
        """Emit every window whose close time stream time has reached, then forget it.

        A window's timer is deleted only after its WindowedMetric is produced, so under
        at-least-once its tombstone waits for the metric's acknowledgement (TableWriter's
        `after_outputs`). Deleted first, a kill -9 could keep the timer's tombstone and lose
        the metric: the window would stay in the table with nothing left to close it."""
        partition = event.message.partition
        now = self.timers.clock(partition, event).now()
        self.timers.save_clock(partition, event)
        if now is None:
            return
        emitted = 0
        for due, key in self.timers.due(partition, now):
            aggregate = batch.get(key, event)
            if aggregate is not None:  # else emitted before a crash that kept its timer
                name, _group, size, start = parse_window_key(key)
                record = to_windowed_metric(name, metrics_rules.METRICS[name], size, start,
                                            aggregate)
                self.sink.produce(self.topic, record["group_key"].encode(),
                                  self.encode(record))
                self.recent.append(record)
                batch.delete(key, event)  # a tombstone: the table stays bounded
                emitted += 1
            self.timers.settle(key, None, [due], event)
        self.counters["metric_windows_emitted"] = (
            self.counters.get("metric_windows_emitted", 0) + emitted)


def register(pipeline: Pipeline) -> None:
    app, settings = pipeline.app, pipeline.settings
    sink = pipeline.services["sink"]
    windows = app.Table(WINDOWS_TABLE, key_type=bytes, value_type=bytes, partitions=1,
                        help="open metric windows")
    timer_table = app.Table(WINDOW_TIMERS_TABLE, key_type=bytes, value_type=bytes,
                            partitions=1, help="metric window close times")
    # Exactly-once commits the records with their outputs: nothing to order.
    after_outputs = settings.processing_guarantee != "exactly_once"
    timers = TimerIndex(timer_table, TableWriter(timer_table, sink, after_outputs=after_outputs),
                        (OBSERVATIONS,), 0)
    folder = WindowFolder(pipeline, windows, timers, grace_ms(), after_outputs=after_outputs)
    pipeline.services["metric_windows_table"] = windows

    @app.on_partitions_revoked.connect
    async def _forget_window_clock(app: Any, revoked: Any, **kwargs: Any) -> None:
        timers.forget_partitions()

    # Internal: Faust declares (creates) it with one partition on start-up.
    observations = app.topic(observations_topic(settings.app_id), key_type=bytes,
                             value_type=bytes, key_serializer="raw", value_serializer="raw",
                             partitions=1, internal=True)

    @app.agent(observations, name="metrics-windows")
    async def fold_windows(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events,
                                               settings.batch_timeout_s):
            await folder.process(events)
