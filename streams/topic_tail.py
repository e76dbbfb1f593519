"""Follow whole topics from their beginning, forever: every partition assigned, no group.

Unlike ``streams.topic_reader`` (read to the end, then stop) a tail keeps reading what is
appended. Nothing joins a consumer group or commits, so any number of workers can tail the
same topics without a rebalance and each sees every partition. Blocking calls: run them in a
thread (``asyncio.to_thread``); one lock keeps ``close`` from racing a ``poll``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

TP = tuple[str, int]


class TopicTail:
    def __init__(self, bootstrap: str, topics: Sequence[str], *, client_id: str,
                 timeout_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            # librdkafka wants a group id even for assign(); it never joins nor commits.
            "group.id": f"{client_id}-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            # Under exactly-once the worker's outputs are transactional: show committed ones.
            "isolation.level": "read_committed",
        })
        try:
            self.ends, self._assigned = self._assign_all(topics, timeout_s)
        except BaseException:
            self._consumer.close()
            raise
        self._closed = False

    def _assign_all(self, topics: Sequence[str], timeout_s: float) -> tuple[
            dict[TP, int], list[TopicPartition]]:
        """Assign every partition from its beginning; returns the end offsets it had now for
        the partitions that hold anything (a reader has reached them when it gets there)."""
        ends: dict[TP, int] = {}
        assigned: list[TopicPartition] = []
        for topic in topics:
            meta = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if meta is None or meta.error is not None:
                raise LookupError(f"topic {topic} is not available: "
                                  f"{None if meta is None else meta.error}")
            for partition in sorted(meta.partitions):
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s)
                if high > low:
                    ends[(topic, partition)] = high
                assigned.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        self._consumer.assign(assigned)
        return ends, assigned

    def poll(self, max_records: int = 500, timeout_s: float = 0.5) -> list[Message]:
        """Up to ``max_records`` messages (errors included: check ``error()``)."""
        with self._lock:
            if self._closed:
                return []
            return list(self._consumer.consume(max_records, timeout_s))

    def positions(self) -> dict[TP, int]:
        """The next offset to read per partition (negative before anything was read)."""
        with self._lock:
            if self._closed:
                return {}
            found = self._consumer.position(self._assigned)
        return {(tp.topic, tp.partition): tp.offset for tp in found}

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._consumer.close()
