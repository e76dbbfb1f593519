"""Read a topic from its start to the end it had when reading began, then stop.

Partitions are assigned (no group membership, nothing committed), so listing a topic never
disturbs a consumer group and always terminates.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition


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
        ranges = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                  for p in sorted(meta.partitions) if partition is None or p == partition}
        yield from read_ranges(consumer, topic, ranges, timeout_s=timeout_s)
    finally:
        consumer.close()


def read_ranges(consumer: Consumer, topic: str, ranges: Mapping[int, tuple[int, int]], *,
                timeout_s: float = 10.0) -> Iterator[Message]:
    """The messages of ``topic`` in [start, end) per partition (``ranges``), read together
    by assignment on ``consumer`` (unassigned after), in offset order per partition.

    A partition is done at its end offset, or once the consumer's position has passed it:
    compaction and transaction markers leave offsets that never arrive as messages (a
    consumer with ``enable.partition.eof`` says so at once, others at their next idle poll).
    Raises TimeoutError after ``timeout_s`` without progress.
    """
    ends = {p: end for p, (start, end) in ranges.items() if end > start}
    if not ends:
        return
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in ends])
    try:
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
            p, error = msg.partition() or 0, msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {topic}[{p}]: {error.str()}")
                ends.pop(p, None)
                continue
            off = msg.offset() or 0
            if p not in ends or off >= ends[p]:
                continue
            if off >= ends[p] - 1:
                del ends[p]
            yield msg
    finally:
        consumer.unassign()


def _drop_finished(consumer: Consumer, topic: str, ends: dict[int, int]) -> None:
    for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
        if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, 0):
            ends.pop(tp.partition, None)
