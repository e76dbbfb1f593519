"""A topic tail (the query projection's reader) on the real broker: it reads every partition
without a group, and it reaches the end offsets it saw at start even when the topic ends in
transaction markers (the worker's outputs under exactly-once), skipping aborted records."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.projection_store import CatchUp
from streams.topic_tail import TopicTail

pytestmark = pytest.mark.broker


def _high_watermark(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        consumer.close()


def test_the_tail_reads_all_partitions_and_reaches_ends_behind_transaction_markers(
        kafka_bootstrap: str) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=b"kept-%d" % i, partition=i % 2)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted", partition=0)
    producer.flush(30)  # on the log, so the abort leaves it there, skipped by readers
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"kept-last", partition=0)
    producer.commit_transaction(30)
    # Partition 0: 2 kept, commit marker, aborted, abort marker, kept, commit marker = 7.
    # Markers are written after the commit returns: wait until they are on the log.
    deadline = time.monotonic() + 20
    while _high_watermark(kafka_bootstrap, topic, 0) < 7:
        assert time.monotonic() < deadline, "transaction markers never reached the log"
        time.sleep(0.1)

    tail = TopicTail(kafka_bootstrap, [topic], client_id=f"{topic}-reader")
    try:
        assert tail.ends == {(topic, 0): 7, (topic, 1): 2}
        catch_up = CatchUp(tail.ends)
        read: list[bytes] = []
        deadline = time.monotonic() + 20
        while not catch_up.done:
            assert time.monotonic() < deadline, catch_up.waiting_for
            read += [m.value() or b"" for m in tail.poll(timeout_s=0.2) if m.error() is None]
            for tp, position in tail.positions().items():
                catch_up.reached(tp, position)
        assert sorted(read) == [b"kept-0", b"kept-1", b"kept-2", b"kept-last"]
    finally:
        tail.close()
    assert tail.poll() == [] and tail.positions() == {}  # closed: nothing, and no crash
