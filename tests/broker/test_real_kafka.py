"""The session broker is real Apache Kafka: clients, transactions and compaction behave as such."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.broker


def _create(bootstrap: str, topic: str, partitions: int = 1, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, partitions, 1, config=config)])[topic]
    fut.result(timeout=30)


def _consume_all(bootstrap: str, topic: str, isolation: str = "read_uncommitted",
                 expect: int | None = None, timeout: float = 20.0) -> list[tuple[bytes, bytes]]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    consumer.subscribe([topic])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    saw_eof = False
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == -191:  # _PARTITION_EOF
                    saw_eof = True
                    if expect is None or len(out) >= expect:
                        break
                    continue
                raise KafkaException(msg.error())
            out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    assert saw_eof, "never reached the end of the topic"
    return out


async def test_aiokafka_round_trip(kafka_bootstrap: str, unique_name: str) -> None:
    _create(kafka_bootstrap, unique_name, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(50):
            await producer.send(unique_name, key=f"k{i}".encode(), value=f"v{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(unique_name, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=unique_name)
    await consumer.start()
    got: dict[bytes, bytes] = {}
    try:
        while len(got) < 50:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no records within 5 s"
            for records in batch.values():
                got.update((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    assert got == {f"k{i}".encode(): f"v{i}".encode() for i in range(50)}


def test_confluent_kafka_round_trip(kafka_bootstrap: str, unique_name: str) -> None:
    _create(kafka_bootstrap, unique_name)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(20):
        producer.produce(unique_name, key=b"k", value=str(i).encode())
    assert producer.flush(10) == 0
    values = [v for _, v in _consume_all(kafka_bootstrap, unique_name, expect=20)]
    assert values == [str(i).encode() for i in range(20)]


def test_transactions_commit_and_abort_seen_by_read_committed(
    kafka_bootstrap: str, unique_name: str
) -> None:
    _create(kafka_bootstrap, unique_name)
    producer = Producer({"bootstrap.servers": kafka_bootstrap,
                         "transactional.id": f"tx-{unique_name}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(unique_name, key=b"a", value=b"committed")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(unique_name, key=b"b", value=b"aborted")
    producer.flush(10)
    producer.abort_transaction(30)

    committed = _consume_all(kafka_bootstrap, unique_name, "read_committed", expect=1)
    uncommitted = _consume_all(kafka_bootstrap, unique_name, "read_uncommitted", expect=2)
    assert committed == [(b"a", b"committed")]
    assert sorted(v for _, v in uncommitted) == [b"aborted", b"committed"]


def test_compacted_topic_compacts(kafka_bootstrap: str, unique_name: str) -> None:
    _create(kafka_bootstrap, unique_name, 1, **{
        "cleanup.policy": "compact", "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.001", "min.compaction.lag.ms": "0",
        "delete.retention.ms": "100",
    })
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    rounds, keys = 40, 5
    for r in range(rounds):
        for k in range(keys):
            producer.produce(unique_name, key=f"key-{k}".encode(), value=f"{r}".encode() * 50)
        producer.flush(10)
        time.sleep(0.02)  # spread records over many 100 ms segments so the cleaner has work
    # The active segment is never cleaned; keep rolling it with a sentinel key until the cleaner
    # has removed the overwritten values (bounded: fail after 60 s).
    deadline = time.monotonic() + 60
    records: list[tuple[bytes, bytes]] = []
    while time.monotonic() < deadline:
        producer.produce(unique_name, key=b"roll", value=b"x")
        producer.flush(10)
        records = [r for r in _consume_all(kafka_bootstrap, unique_name) if r[0] != b"roll"]
        if len(records) < rounds * keys:
            break
        time.sleep(1.0)
    assert len(records) < rounds * keys, "the log cleaner never compacted the topic"
    latest = {k: v for k, v in records}
    assert latest == {f"key-{k}".encode(): f"{rounds - 1}".encode() * 50 for k in range(keys)}
