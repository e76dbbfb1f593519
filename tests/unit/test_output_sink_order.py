"""The sink's bookkeeping of which records are settled: delivery reports arrive out of order
across partitions, and a held record may go only once every record before it is settled."""

from __future__ import annotations

import itertools
import random

import pytest

from streams.sink import OutputNotDelivered, OutputSink


class _Message:
    def __init__(self, seq: int) -> None:
        self.seq = seq

    def topic(self) -> str:
        return "outputs"

    def partition(self) -> int:
        return self.seq % 3

    def offset(self) -> int:
        return self.seq

    def key(self) -> bytes:
        return b"k"


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


class _Error:
    def str(self) -> str:
        return "broker said no"


class _Unconfirmed(_Message):
    """A success the client inferred from a later batch: no offset."""

    def offset(self) -> None:  # type: ignore[override]
        return None


@pytest.mark.parametrize("failure", ["error", "no offset"])
def test_a_failed_report_settles_its_record_and_holds_back_what_waits_for_it(
        sink: OutputSink, failure: str) -> None:
    """Settled, so nothing waits forever; but the table record behind it must not go out
    (it would claim an output that is not on its topic): flush raises, the worker exits
    uncommitted and recomputes the batch."""
    sink.produce("outputs", b"k", b"v")
    sink.produce_after_outputs("changelog", b"k", b"v", partition=0)
    ran: list[int] = []
    if failure == "error":
        sink._on_delivery(0, lambda: ran.append(0), _Error(), _Message(0))  # type: ignore[arg-type]
    else:
        sink._on_delivery(0, lambda: ran.append(0), None, _Unconfirmed(0))  # type: ignore[arg-type]
    sink.poll()
    assert (sink._settled_below, sink.held, ran) == (1, 1, [])
    sink.produce_after_outputs("changelog", b"k", b"w", partition=0)
    assert sink.held == 2
    with pytest.raises(OutputNotDelivered, match="broker said no" if failure == "error"
                       else "without an offset"):
        sink.flush(0.1)


def test_a_report_without_an_offset_is_not_an_acknowledgement(sink: OutputSink) -> None:
    sink.produce("outputs", b"k", b"v")
    sink._on_delivery(0, None, None, _Unconfirmed(0))  # type: ignore[arg-type]
    assert (sink.delivered, sink.acked) == (0, {})
    with pytest.raises(OutputNotDelivered, match=r"outputs \[0\] key b'k'"):
        sink.flush(0.1)


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
