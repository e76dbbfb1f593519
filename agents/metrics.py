"""Windowed metrics for analysts: tumbling 1-minute and 1-hour windows over fulfillment states.

Two thin agents, both off the fulfillment agent's hot path:

* `metrics-observe` reads `fulfillment-states` (keyed by order, co-partitioned) and turns each
  state into metric observations (`tables.metrics_rules`), remembering per order what was
  already counted (`metrics-counted` table), so a duplicate or replayed version counts nothing.
* `metrics-windows` folds the observations into event-time windows (`tables.windows`), one
  table value per `name|group|size|start`, and emits each window's WindowedMetric to
  `fulfillment-metrics` once, when stream time passes its end plus the grace period; the window
  then leaves the table as a tombstone. Observations beyond grace go to `late_events`.

Why a single-partition observations topic in between: a window (say, the exception rate of
warehouse W1) gathers orders of every input partition, so per-partition windows would emit one
partial result each. Observations are few (a handful per order) and small; one partition is
one place where a window is complete and one stream clock closes it. Faust's windowed tables
are not used (their expiry is unreliable): closing is driven by our stream clock and timer keys
(`streams/timers.py`), so tests and replays are deterministic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from faust.types import EventT, TableT

from streams.app import Pipeline
from streams.batching import KeyedBatch, TableWriter
from streams.schema_source import RegistryUnavailable
from streams.serde import DecodeError, WireDecoder
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
COUNTED_TABLE = "metrics-counted"
WINDOWS_TABLE = "metric-windows"
WINDOW_TIMERS_TABLE = "metric-window-timers"
OBSERVATIONS = "observations"  # the one input of the windows' stream clock
DEFAULT_GRACE_MS = 10 * 60_000
RECENT_WINDOWS = 10_000  # emitted windows kept in memory for GET /metrics/windows


def observations_topic(app_id: str) -> str:
    return f"{app_id}-metric-observations"


def grace_ms() -> int:
    """Grace period of every window; FSTREAMS_METRICS_GRACE_MS overrides the default."""
    return int(os.environ.get("FSTREAMS_METRICS_GRACE_MS", DEFAULT_GRACE_MS))


def encode_observation(obs: Observation) -> bytes:
    return json.dumps([obs.name, obs.labels, obs.event_ms, obs.count, obs.value],
                      separators=(",", ":")).encode()


def decode_observation(raw: bytes) -> Observation:
    name, labels, event_ms, count, value = json.loads(raw)
    return Observation(name, tuple((k, v) for k, v in labels), event_ms, count, value)


class StateObserver:
    """A batch of fulfillment states -> observations on the single-partition topic."""

    def __init__(self, pipeline: Pipeline, counted: TableT, topic: str) -> None:
        services = pipeline.services
        self.decoder = WireDecoder.for_record(services["schema_source"], "FulfillmentState")
        self.sink = services["sink"]
        self.dead_letters = services["dead_letters"]
        self.counters: dict[str, int] = services.setdefault("counters", {})
        self.counted = counted
        self.writer = TableWriter(counted, self.sink)
        self.topic = topic

    async def process(self, events: Sequence[EventT]) -> None:
        batch: KeyedBatch[dict[str, Any]] = KeyedBatch(self.counted, self.writer)
        produced = 0
        for event in events:
            msg = event.message
            state = await self._decode(event)
            if state is None or msg.key is None:
                continue
            counted = batch.get(msg.key, event) or metrics_rules.new_counted()
            observations = metrics_rules.observe(counted, state)
            if not observations:
                # Nothing new counted: skip the write (most versions move no milestone). The
                # counting is idempotent without the stored version, which is a shortcut.
                continue
            batch.put(msg.key, counted, event)
            for obs in observations:
                self.sink.produce(self.topic, None, encode_observation(obs), partition=0)
            produced += len(observations)
        batch.flush()
        self.sink.poll()
        self.writer.checkpoint()
        self.counters["metric_observations"] = (
            self.counters.get("metric_observations", 0) + produced)

    async def _decode(self, event: EventT) -> dict[str, Any] | None:
        msg = event.message
        delay = 0.5
        while True:
            try:
                state: dict[str, Any] = self.decoder.decode(msg.value)
                return state
            except DecodeError as exc:  # not ours to fix here: keep the bytes, go on
                self.dead_letters.send(msg.topic, msg.partition, msg.offset, msg.key,
                                       msg.value, list(msg.headers or []), exc,
                                       "metrics-decode")
                return None
            except RegistryUnavailable:  # transient: hold the partition, do not drop
                log.warning("schema registry unreachable; retrying in %.1fs", delay, extra={
                    "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                    "order_id": (msg.key or b"").decode(errors="replace")})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class WindowFolder:
    """A batch of observations -> window aggregates; closed windows -> WindowedMetric."""

    def __init__(self, pipeline: Pipeline, windows: TableT, timers: TimerIndex,
                 grace: int) -> None:
        services = pipeline.services
        self.windows = windows
        self.writer = TableWriter(windows, services["sink"])
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
            obs = decode_observation(event.message.value)
            clock = self.timers.clock(event.message.partition, event)
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
        """Emit every window whose close time stream time has reached, then forget it."""
        partition = event.message.partition
        now = self.timers.clock(partition, event).now()
        self.timers.save_clock(partition, event)
        if now is None:
            return
        emitted = 0
        for key in self.timers.pop_due(partition, now, event):
            aggregate = batch.get(key, event)
            if aggregate is None:  # already emitted (a timer replayed after a crash)
                continue
            name, _group, size, start = parse_window_key(key)
            record = to_windowed_metric(name, metrics_rules.METRICS[name], size, start,
                                        aggregate)
            self.sink.produce(self.topic, record["group_key"].encode(), self.encode(record))
            self.recent.append(record)
            batch.delete(key, event)  # a tombstone in the changelog: the table stays bounded
            emitted += 1
        self.counters["metric_windows_emitted"] = (
            self.counters.get("metric_windows_emitted", 0) + emitted)


def register(pipeline: Pipeline) -> None:
    app, settings, names = pipeline.app, pipeline.settings, pipeline.names
    sink = pipeline.services["sink"]
    topic_name = observations_topic(settings.app_id)
    counted = pipeline.bytes_table(COUNTED_TABLE, help="metrics already counted per order")
    windows = app.Table(WINDOWS_TABLE, key_type=bytes, value_type=bytes, partitions=1,
                        help="open metric windows")
    timer_table = app.Table(WINDOW_TIMERS_TABLE, key_type=bytes, value_type=bytes,
                            partitions=1, help="metric window close times")
    timers = TimerIndex(timer_table, TableWriter(timer_table, sink), (OBSERVATIONS,), 0)
    observer = StateObserver(pipeline, counted, topic_name)
    folder = WindowFolder(pipeline, windows, timers, grace_ms())
    pipeline.services["metric_windows_table"] = windows

    @app.on_partitions_revoked.connect
    async def _forget_window_clock(app: Any, revoked: Any, **kwargs: Any) -> None:
        timers.forget_partitions()

    @app.agent(pipeline.topic(names.fulfillment_states), name="metrics-observe")
    async def observe_states(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events,
                                               settings.batch_timeout_s):
            await observer.process(events)

    # Internal: Faust declares (creates) it with one partition on start-up.
    observations = app.topic(topic_name, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw", partitions=1,
                             internal=True)

    @app.agent(observations, name="metrics-windows")
    async def fold_windows(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events,
                                               settings.batch_timeout_s):
            await folder.process(events)
