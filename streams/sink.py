"""Output sink of the live path: one confluent-kafka Producer per worker.

Why not `await topic.send()`: Faust's per-event produce path (futures, callbacks, attachments)
was measured as the dominant cost of a stateful agent. librdkafka batches in its own thread;
we hand it bytes and poll delivery reports once per batch.

At-least-once: `OffsetGuard` is a Faust sensor whose `on_commit_initiated` runs before Faust
commits consumer offsets; it flushes this producer and refuses the commit (raises) if any
output was not acknowledged, so an offset is never committed ahead of the outputs it caused.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from faust.sensors import Sensor

log = logging.getLogger(__name__)


class OutputNotDelivered(RuntimeError):
    """An output record was not acknowledged by Kafka; offsets must not be committed."""


class OutputSink:
    def __init__(self, bootstrap: str, *, client_id: str = "fstreams-sink",
                 linger_ms: int = 5, extra: dict[str, Any] | None = None) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,  # retries never duplicate or reorder outputs
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",  # same partition as the input's key (see producer)
            "logger": logging.getLogger("fstreams.sink.librdkafka"),
        }
        conf.update(extra or {})
        self._producer = Producer(conf)
        self._failed: list[str] = []
        self.produced = 0
        self.delivered = 0
        # Highest acknowledged offset per (topic, partition): table writers checkpoint it.
        self.acked: dict[tuple[str, int], int] = {}

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err.str()}")
        else:
            self.delivered += 1
            tp = (msg.topic(), msg.partition())
            offset = msg.offset()
            if offset > self.acked.get(tp, -1):
                self.acked[tp] = offset

    @property
    def checkpointable(self) -> dict[tuple[str, int], int]:
        """Offsets a table may record as its store's changelog position: every acknowledged
        record here (a transactional sink narrows this to committed transactions)."""
        return self.acked

    def forget_acked(self) -> None:
        """Drop acknowledged offsets learned so far (after a rebalance they describe partitions
        that other workers may have written since)."""
        self.flush()
        self.acked.clear()

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None,
                partition: int = -1) -> None:
        """Queue one record; `partition` -1 lets the (murmur2) partitioner choose."""
        try:
            self._producer.produce(topic, value, key, partition, headers=headers,
                                   on_delivery=self._on_delivery)
        except BufferError:
            # Local queue full: serve delivery reports until there is room (back-pressure).
            self._producer.flush(5.0)
            self._producer.produce(topic, value, key, partition, headers=headers,
                                   on_delivery=self._on_delivery)
        self.produced += 1

    def poll(self) -> None:
        """Serve delivery callbacks without blocking; call once per batch."""
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        if self._failed:
            failed, self._failed = self._failed, []
            raise OutputNotDelivered(f"{len(failed)} outputs failed, first: {failed[0]}")
        if remaining:
            raise OutputNotDelivered(f"{remaining} outputs still unacknowledged after {timeout}s")

    def close(self) -> None:
        try:
            self.flush(10.0)
        except OutputNotDelivered as exc:
            log.error("outputs lost at shutdown; they will be recomputed on restart: %s", exc)


class OffsetGuard(Sensor):
    """Flush every registered sink before Faust commits consumer offsets."""

    def __init__(self, *sinks: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sinks = list(sinks)

    def on_commit_initiated(self, consumer: Any) -> Any:
        for sink in self.sinks:
            # OutputSink.flush raises itself; other sinks return how many are still queued.
            remaining = sink.flush()
            errors = getattr(sink, "errors", None)
            if remaining or errors:
                raise OutputNotDelivered(
                    f"{type(sink).__name__}: {remaining or 0} undelivered, errors: {errors}")
        return None
