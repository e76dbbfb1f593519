"""The live path's output sink on the real broker: records produced with
`produce_after_outputs` reach Kafka only after everything produced before them is
acknowledged, however the earlier records' partitions and delivery reports interleave."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.sink import OutputSink
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.broker


def _topics(bootstrap: str, *names: str, partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(timeout=30)


def test_held_records_wait_for_earlier_outputs_and_go_in_call_order(kafka_bootstrap: str) -> None:
    name = uuid.uuid4().hex[:8]
    outputs, changelog = f"sink-{name}-outputs", f"sink-{name}-changelog"
    _topics(kafka_bootstrap, outputs, changelog)
    sink = OutputSink(kafka_bootstrap, linger_ms=50)
    for i in range(200):  # spread over every partition of the outputs topic
        sink.produce(outputs, f"k{i}".encode(), b"out")
    sink.produce_after_outputs(changelog, b"a", b"1", partition=0)
    sink.produce_after_outputs(changelog, b"a", b"2", partition=0)
    # No delivery report has been served yet (they are served by poll/flush): both wait.
    assert sink.held == 2
    deadline = time.monotonic() + 30
    while sink.held and time.monotonic() < deadline:
        sink.poll()  # acknowledgements arrive; the held records follow on their own
        time.sleep(0.01)
    assert sink.held == 0
    # Released in the poll that served the last of the 200 outputs' reports, no sooner.
    assert sink.delivered >= 200
    sink.flush()
    written = read_topic(kafka_bootstrap, changelog)
    assert [value for *_, value in written] == [b"1", b"2"]
    assert len(read_topic(kafka_bootstrap, outputs)) == 200


def test_nothing_held_goes_straight_out(kafka_bootstrap: str) -> None:
    name = uuid.uuid4().hex[:8]
    changelog = f"sink-{name}-changelog"
    _topics(kafka_bootstrap, changelog, partitions=1)
    sink = OutputSink(kafka_bootstrap)
    sink.produce_after_outputs(changelog, b"a", b"1", partition=0)
    assert sink.held == 0
    sink.flush()
    assert [value for *_, value in read_topic(kafka_bootstrap, changelog)] == [b"1"]


def test_flush_releases_everything_held(kafka_bootstrap: str) -> None:
    name = uuid.uuid4().hex[:8]
    outputs, changelog = f"sink-{name}-outputs", f"sink-{name}-changelog"
    _topics(kafka_bootstrap, outputs, changelog, partitions=2)
    sink = OutputSink(kafka_bootstrap, linger_ms=1000)
    sink.produce(outputs, b"k", b"out")
    sink.produce_after_outputs(changelog, b"a", b"1", partition=1)
    sink.produce(outputs, b"k", b"out2")
    sink.produce_after_outputs(changelog, b"a", b"2", partition=1)
    assert sink.held == 2
    sink.flush()  # what the offset guard and a revocation do
    assert sink.held == 0
    assert [value for *_, value in read_topic(kafka_bootstrap, changelog)] == [b"1", b"2"]
