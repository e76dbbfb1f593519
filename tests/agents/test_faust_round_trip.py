"""A Faust agent on the real broker: batched table writes, changelog, sink outputs, offsets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.app import create_app
from streams.batching import KeyedBatch
from streams.settings import Settings
from streams.sink import OffsetGuard, OutputSink
from streams.topics import ensure_topics

pytestmark = pytest.mark.broker


def _read_topic(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "enable.auto.commit": False})
    out: list[tuple[bytes, bytes]] = []
    try:
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high == low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            while True:
                msg = consumer.poll(5)
                assert msg is not None and not msg.error()
                out.append((msg.key(), msg.value()))
                if msg.offset() >= high - 1:
                    break
    finally:
        consumer.close()
    return out


async def test_counting_agent_round_trip(kafka_bootstrap: str, unique_name: str,
                                         tmp_path: Path) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"{unique_name}-",
                        data_dir=tmp_path, app_id=unique_name, partitions=2)
    pipeline = create_app(settings, web_enabled=False, table_standby_replicas=0)
    app, names = pipeline.app, pipeline.names
    ensure_topics(kafka_bootstrap, names, partitions=2)
    sink = OutputSink(kafka_bootstrap)
    app.sensors.add(OffsetGuard(sink))
    counts = pipeline.bytes_table("counts")
    source = pipeline.topic(names.orders)

    @app.agent(source)
    async def count(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(100, 0.05):
            batch: KeyedBatch[int] = KeyedBatch(counts)
            for event in events:
                key = event.message.key
                n = (batch.get(key, event) or 0) + 1
                batch.put(key, n, event)
                sink.produce(names.fulfillment_states, key, str(n).encode())
            batch.flush()
            sink.poll()

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    keys = [f"order-{i}".encode() for i in range(10)]
    for round_ in range(5):
        for key in keys:
            producer.produce(names.orders, key=key, value=f"{round_}".encode())
    producer.flush(10)

    await app.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sink.delivered < 50:
            await asyncio.sleep(0.1)
        assert sink.delivered == 50
    finally:
        await app.stop()
        sink.close()

    outputs = _read_topic(kafka_bootstrap, names.fulfillment_states, 2)
    last = {k: int(v) for k, v in outputs}
    assert last == {k: 5 for k in keys}
    changelog = _read_topic(kafka_bootstrap, f"{unique_name}-counts-changelog", 2)
    assert {k: int(v) for k, v in changelog} == {k: 5 for k in keys}
    assert len(changelog) <= 50, "one changelog record per key per batch at most"
