"""Read a topic from its start to the end it had when reading began, then stop.

Partitions are assigned (no group membership, nothing committed), so listing a topic never
disturbs a consumer group and always terminates.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, Message, TopicPartition


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"fstreams-reader-{uuid.uuid4().hex[:8]}",  # never committed
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    })


def read_to_end(bootstrap: str, topic: str, *, timeout_s: float = 10.0,
                partition: int | None = None) -> Iterator[Message]:
    """Every message of ``topic`` (or of one ``partition``) up to its current end, in offset
    order per partition. Used by the dead-letter tools, alert listing, silences and replay.

    A missing topic reads as empty. Raises TimeoutError when the broker stops answering.
    """
    consumer = _consumer(bootstrap)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        ends: dict[int, int] = {}
        starts = []
        for p in sorted(meta.partitions):
            if partition is not None and p != partition:
                continue
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                       timeout=timeout_s)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        if not ends:
            return
        consumer.assign(starts)
        idle_since = time.monotonic()
        while ends:
            msg = consumer.poll(0.2)
            if msg is None:
                _drop_finished(consumer, topic, ends)
                if ends and time.monotonic() - idle_since > timeout_s:
                    raise TimeoutError(f"no progress reading {topic} for {timeout_s}s "
                                       f"(partitions left: {sorted(ends)})")
                continue
            idle_since = time.monotonic()
            if msg.error() is not None:
                raise RuntimeError(f"reading {topic}: {msg.error()}")
            p, off = msg.partition() or 0, msg.offset() or 0
            if p not in ends or off >= ends[p]:
                continue
            if off >= ends[p] - 1:
                del ends[p]
            yield msg
    finally:
        consumer.close()


def _drop_finished(consumer: Consumer, topic: str, ends: dict[int, int]) -> None:
    # Compaction and transaction markers leave offsets that never arrive as messages.
    for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
        if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, 0):
            ends.pop(tp.partition, None)
