"""Reading topics and waiting on consumer lag in tests: bounded polls, never fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.topic_reader import read_to_end


def read_topic(bootstrap: str, topic: str,
               timeout: float = 60.0) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of `topic` from the beginning to the current end: (partition, offset,
    key, value), in offset order per partition."""
    out = [(msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value())
           for msg in read_to_end(bootstrap, topic, timeout_s=timeout)]
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-watermarks"})
    ends: dict[tuple[str, int], int] = {}
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                ends[(topic, p)] = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10)[1]
    finally:
        consumer.close()
    return ends


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap})
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    tps = result[group].result(timeout=15).topic_partitions or []
    return {(tp.topic, tp.partition): tp.offset for tp in tps if tp.offset >= 0}


class Process(Protocol):
    name: str

    @property
    def running(self) -> bool: ...

    def _log_hint(self) -> str: ...


def wait_for_zero_lag(bootstrap: str, group: str, topics: Iterable[str],
                      timeout: float = 120.0, workers: Sequence[Process] = ()) -> None:
    """Until `group` has committed the end offset of every partition of `topics`; fails
    at once if one of `workers` dies meanwhile."""
    wanted = {tp: end for tp, end in end_offsets(bootstrap, topics).items() if end > 0}
    deadline = time.monotonic() + timeout
    lagging: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        committed = committed_offsets(bootstrap, group)
        lagging = {tp: end - committed.get(tp, 0) for tp, end in wanted.items()
                   if committed.get(tp, 0) < end}
        if not lagging:
            return
        for worker in workers:
            if not worker.running:
                raise RuntimeError(f"{worker.name} died while waiting{worker._log_hint()}")
        time.sleep(0.25)
    raise TimeoutError(f"group {group} still lagging after {timeout}s: {lagging}")
