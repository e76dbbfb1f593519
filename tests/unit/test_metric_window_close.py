"""Closing a metric window (agents/metrics.py WindowFolder) over real RocksDB databases and an
at-least-once TableWriter whose changelog records are acknowledged when the test says.

What a kill -9 may keep of a batch is a prefix of each partition's records in which no table
record is ahead of an output produced before it (streams/sink.py). So the order in which the
folder hands records to the sink is the crash contract: a window's timer may be deleted only
after its WindowedMetric is produced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import rocksdict

from agents.metrics import WindowFolder
from streams.batching import TableWriter
from streams.observations import encode_observations
from streams.timers import TimerIndex, timer_key
from tables.windows import HOUR_MS, Observation

METRICS_TOPIC = "fulfillment-metrics"
T0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS  # an hour boundary


class RecordingSink:
    """The OutputSink calls the folder makes, in order; held table records are acknowledged
    (their `then` run: RocksDB written) by `ack_all`."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes | None, bytes | None]] = []
        self.waiting: list[Any] = []
        self.checkpointable: dict[Any, int] = {}

    def produce(self, topic: str, key: bytes | None, value: bytes | None, *_: Any) -> None:
        self.log.append((topic, key, value))

    def produce_after_outputs(self, topic: str, key: bytes, value: bytes | None,
                              headers: Any, partition: int, then: Any) -> None:
        self.log.append((topic, key, value))
        self.waiting.append(then)

    def poll(self) -> None:
        pass

    def ack_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for then in waiting:
            then()


class Event:
    __slots__ = ("__weakref__", "message")  # Faust keeps the current event as a weak reference

    def __init__(self, *observations: Observation) -> None:
        value, = encode_observations(observations)
        self.message = SimpleNamespace(partition=0, value=value)


def table(db: rocksdict.Rdict, changelog: str) -> Any:
    return SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db),
                           changelog_topic=SimpleNamespace(get_topic_name=lambda: changelog),
                           get=lambda key: None)


def folder(tmp_path: Path) -> tuple[WindowFolder, RecordingSink, rocksdict.Rdict,
                                    rocksdict.Rdict]:
    options = rocksdict.Options(raw_mode=True)
    windows_db = rocksdict.Rdict(str(tmp_path / "windows"), options=options)
    timers_db = rocksdict.Rdict(str(tmp_path / "timers"), options=options)
    sink = RecordingSink()
    timer_table = table(timers_db, "timers-changelog")
    timers = TimerIndex(timer_table, TableWriter(timer_table, sink, after_outputs=True),
                        ("observations",), 0)
    pipeline = SimpleNamespace(
        services={"sink": sink, "encoders": {METRICS_TOPIC: SimpleNamespace(
            encode=orjson.dumps)}},
        names=SimpleNamespace(fulfillment_metrics=METRICS_TOPIC))
    return (WindowFolder(pipeline, table(windows_db, "windows-changelog"), timers, 0,  # type: ignore[arg-type]
                         after_outputs=True), sink, windows_db, timers_db)


def delivered(at_ms: int) -> Event:
    return Event(Observation("orders_delivered", (("channel", "web"),), at_ms, 1, 1))


def timers_in(db: rocksdict.Rdict) -> list[bytes]:
    return [bytes(k) for k in db.keys() if bytes(k)[:1].isdigit()]  # noqa: SIM118 (Rdict)


def test_a_window_timer_is_deleted_only_after_its_metric(tmp_path: Path) -> None:
    windows, sink, windows_db, timers_db = folder(tmp_path)
    asyncio.run(windows.process([delivered(T0 + 1_000)]))
    sink.ack_all()
    opened = timers_in(timers_db)
    assert len(opened) == 2  # the minute and the hour window of the observation
    sink.log.clear()

    asyncio.run(windows.process([delivered(T0 + 3 * HOUR_MS)]))  # both close
    metrics = [i for i, (topic, _, _) in enumerate(sink.log) if topic == METRICS_TOPIC]
    tombstones = {key: i for i, (topic, key, value) in enumerate(sink.log)
                  if topic == "timers-changelog" and value is None}
    assert len(metrics) == 2
    assert set(tombstones) == set(opened)
    # A tombstone waits only for the outputs produced before it: the n-th window's timer
    # may go once n metrics are out (each window's own is emitted just before it).
    for n, at in enumerate(sorted(tombstones.values()), start=1):
        assert sum(i < at for i in metrics) >= n, sink.log
    sink.ack_all()
    assert not set(timers_in(timers_db)) & set(opened)
    assert [bytes(k).rsplit(b"|", 1)[1] for k in windows_db.keys()] == [b"%d" % (T0 + 3 * HOUR_MS)] * 2  # noqa: SIM118 E501 (the closed windows are tombstoned)


def test_a_timer_whose_window_is_gone_is_deleted_without_a_metric(tmp_path: Path) -> None:
    """A crash kept a window's tombstone but lost its timer's: the timer is found again, has
    nothing to emit, and is deleted (else it would be found by every scan)."""
    windows, sink, _, timers_db = folder(tmp_path)
    orphan = timer_key(T0 + 60_000, b"orders_delivered|gone|60000|%d" % T0)
    timers_db.put(orphan, b"")
    asyncio.run(windows.process([delivered(T0 + 3 * HOUR_MS)]))
    assert [t for t, _, _ in sink.log].count(METRICS_TOPIC) == 0
    sink.ack_all()
    assert orphan not in timers_in(timers_db)


def emitted_metrics(sink: RecordingSink) -> list[Any]:
    return [orjson.loads(value) for topic, _, value in sink.log  # type: ignore[arg-type]
            if topic == METRICS_TOPIC]


def test_a_record_of_many_observations_folds_as_one_record_each(tmp_path: Path) -> None:
    """The fold takes a batch's observations in one record (streams/observations.py): the
    windows, late counts and closed metrics are those of one record per observation."""
    observations = [
        Observation("orders_delivered", (("channel", "web"),), T0 + 1_000, 1, 1),
        Observation("orders_delivered", (("channel", "app"),), T0 + 61_000, 1, 1),
        Observation("units_shipped", (("warehouse", "W1"),), T0 + 62_000, 1, 5),
        # Late for its minute (stream time is past its close), still on time for its hour.
        Observation("orders_delivered", (("channel", "web"),), T0 + 2_000, 1, 1),
    ]
    closing = Observation("orders_delivered", (("channel", "web"),), T0 + 3 * HOUR_MS, 1, 1)
    one_each, sink_one, db_one, _ = folder(tmp_path / "one-each")
    many, sink_many, db_many, _ = folder(tmp_path / "many")
    asyncio.run(one_each.process([Event(obs) for obs in observations]))
    asyncio.run(many.process([Event(*observations)]))
    for windows, sink in ((one_each, sink_one), (many, sink_many)):
        sink.ack_all()
        asyncio.run(windows.process([Event(closing)]))
        sink.ack_all()
    assert emitted_metrics(sink_many) == emitted_metrics(sink_one)
    # Minute and hour of web, app and W1, and the minute that counts the late observation.
    metrics = emitted_metrics(sink_one)
    assert len(metrics) == 7
    assert [m["late_events"] for m in metrics if m["name"] == "late_events"] == [1]
    assert dict(db_many.items()) == dict(db_one.items())
