"""The sink's bookkeeping of which records are settled: delivery reports arrive out of order
across partitions, and a held record may go only once every record before it is settled."""

from __future__ import annotations

import itertools
import random

import pytest

from streams.sink import OutputSink


class _Message:
    def __init__(self, seq: int) -> None:
        self.seq = seq

    def topic(self) -> str:
        return "outputs"

    def partition(self) -> int:
        return self.seq % 3

    def offset(self) -> int:
        return self.seq


@pytest.fixture
def sink() -> OutputSink:
    # Nothing listens there: records stay queued, and the test serves the reports itself.
    return OutputSink("127.0.0.1:9", extra={"message.timeout.ms": 600_000})


def _report(sink: OutputSink, seq: int) -> None:
    sink._on_delivery(seq, None, None, _Message(seq))


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_a_held_record_waits_for_every_earlier_report(sink: OutputSink,
                                                     order: tuple[int, ...]) -> None:
    for _ in range(4):
        sink.produce("outputs", b"k", b"v")
    sink.produce_after_outputs("changelog", b"k", b"v", partition=0)
    for reported, seq in enumerate(order, start=1):
        assert sink.held == 1
        assert sink.in_flight == 4 - (reported - 1)
        _report(sink, seq)
        sink.poll()
        assert sink.held == (0 if reported == 4 else 1), f"after reports {order[:reported]}"
    assert sink.in_flight == 1  # the released record, handed to librdkafka


def test_held_records_go_in_call_order_each_behind_the_outputs_before_it(
        sink: OutputSink) -> None:
    sink.produce("outputs", b"k", b"v")  # output 0
    sink.produce_after_outputs("changelog", b"k", b"a", partition=0)  # waits for 0
    sink.produce("outputs", b"k", b"v")  # output 1
    sink.produce_after_outputs("changelog", b"k", b"b", partition=0)  # waits for 0 and 1
    _report(sink, 1)
    sink.poll()
    assert sink.held == 2
    _report(sink, 0)
    sink.poll()
    # Both go at once, "a" first: held records never wait for each other's reports.
    assert (sink.held, sink.produced) == (0, 4)


def test_a_held_record_waits_only_for_outputs_before_it(sink: OutputSink) -> None:
    sink.produce("outputs", b"k", b"v")  # output 0
    sink.produce_after_outputs("changelog", b"k", b"a", partition=0)
    _report(sink, 0)
    sink.poll()
    assert sink.held == 0
    sink.produce("outputs", b"k", b"v")  # output 1: not reported
    sink.produce_after_outputs("changelog", b"k", b"b", partition=0)
    sink.poll()
    assert sink.held == 1


def test_a_failed_report_settles_its_record(sink: OutputSink) -> None:
    sink.produce("outputs", b"k", b"v")
    sink.produce_after_outputs("changelog", b"k", b"v", partition=0)

    class _Error:
        def str(self) -> str:
            return "broker said no"

    sink._on_delivery(0, None, _Error(), _Message(0))  # type: ignore[arg-type]
    sink.poll()
    assert sink.held == 0  # never wedged; the failure itself is raised by flush


def test_settled_watermark_over_a_shuffled_stream(sink: OutputSink) -> None:
    rng = random.Random(7)
    for _ in range(500):
        sink.produce("outputs", b"k", b"v")
    order = list(range(500))
    rng.shuffle(order)
    settled: set[int] = set()
    for seq in order:
        _report(sink, seq)
        settled.add(seq)
        lowest_missing = next(i for i in range(501) if i not in settled)
        assert sink._settled_below == lowest_missing
