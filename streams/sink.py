"""Output sink of the live path: one confluent-kafka Producer per worker.

Why not `await topic.send()`: Faust's per-event produce path (futures, callbacks, attachments)
was measured as the dominant cost of a stateful agent. librdkafka batches in its own thread;
we hand it bytes and poll delivery reports once per batch.

At-least-once: `OffsetGuard` is a Faust sensor whose `on_commit_initiated` runs before Faust
commits consumer offsets; it flushes this producer and refuses the commit (raises) if any
output was not acknowledged, so an offset is never committed ahead of the outputs it caused.

Ordering across partitions: librdkafka keeps order within a partition only; a batch's table
changelog record can reach the broker before the outputs produced ahead of it (another
partition, whose batch was still lingering). Killed in between, a worker leaves a table that
says "state v1 emitted, alert fired" while neither is on its topic; the successor restores
that table, reads the uncommitted input again, folds nothing new and never emits them.
`produce_after_outputs` closes that hole: the record is handed to librdkafka only once
everything produced before it is acknowledged.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from faust.sensors import Sensor

from streams.delivery_reports import reason

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
        self.reported = 0  # delivery reports received, failures included
        # Highest acknowledged offset per (topic, partition): table writers checkpoint it.
        self.acked: dict[tuple[str, int], int] = {}
        # Every output (a record of `produce`) has a sequence number, in call order;
        # `_settled_below` is the lowest one whose delivery report has not arrived (reports
        # arrive out of order across partitions, hence the set of those settled above it).
        self._issued = 0
        self._settled_below = 0
        self._settled_above: set[int] = set()
        # Records of `produce_after_outputs` waiting for the outputs numbered below theirs.
        self._held: deque[tuple[int, tuple[Any, ...]]] = deque()

    def _on_delivery(self, seq: int | None, then: Callable[[], None] | None,
                     err: KafkaError | None, msg: Message) -> None:
        # A failure settles its record too (the sink must not wedge); flush() raises it.
        self.reported += 1
        if seq is None:  # a record of produce_after_outputs: not waited for by others
            pass
        elif seq == self._settled_below:
            self._settled_below += 1
            above = self._settled_above
            while self._settled_below in above:
                above.remove(self._settled_below)
                self._settled_below += 1
        else:
            self._settled_above.add(seq)
        offset = msg.offset() if err is None else None
        if offset is None:
            # Without an offset too: not proof it was written, and sending it again could put
            # it behind a later record of its key (a changelog would keep the stale one). A
            # failure, so the batch is recomputed from the last committed offsets.
            self._failed.append(reason(err, msg))
        else:
            self.delivered += 1
            tp = (msg.topic(), msg.partition())
            if offset > self.acked.get(tp, -1):
                self.acked[tp] = offset
            if then is not None:
                then()

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
                partition: int = -1, then: Callable[[], None] | None = None) -> None:
        """Queue one record; `partition` -1 lets the (murmur2) partitioner choose. `then`
        runs once Kafka has acknowledged it (in `poll` or `flush`, never on failure)."""
        seq = self._issued
        self._issued += 1
        self._send(seq, topic, key, value, headers, partition, then)

    def produce_after_outputs(self, topic: str, key: bytes | None, value: bytes | None,
                              headers: list[tuple[str, bytes]] | None = None,
                              partition: int = -1,
                              then: Callable[[], None] | None = None) -> None:
        """Like `produce`, but the record is handed to librdkafka only once every output
        (record of `produce`) queued before this call is acknowledged; held here until then,
        `poll` and `flush` release held records in call order. Held records do not wait for
        each other: a partition keeps its own order, and waiting for the previous batch's
        table records too would allow one batch per round trip and pile the rest up."""
        barrier = self._issued
        if not self._held and self._settled_below >= barrier and not self._failed:
            self._send(None, topic, key, value, headers, partition, then)
        else:
            self._held.append((barrier, (topic, key, value, headers, partition, then)))

    def _send(self, seq: int | None, topic: str, key: bytes | None, value: bytes | None,
              headers: list[tuple[str, bytes]] | None, partition: int,
              then: Callable[[], None] | None) -> None:
        on_delivery = partial(self._on_delivery, seq, then)
        try:
            self._producer.produce(topic, value, key, partition, headers=headers,
                                   on_delivery=on_delivery)
        except BufferError:
            # Local queue full: serve delivery reports until there is room (back-pressure).
            self._producer.flush(5.0)
            self._producer.produce(topic, value, key, partition, headers=headers,
                                   on_delivery=on_delivery)
        self.produced += 1

    @property
    def in_flight(self) -> int:
        """Records handed to librdkafka whose delivery report has not arrived yet."""
        return self.produced - self.reported

    @property
    def held(self) -> int:
        """Records waiting in `produce_after_outputs` for earlier outputs' acknowledgements."""
        return len(self._held)

    def _release(self) -> None:
        if self._failed:  # a failed output settles, but what waits for it must not go out
            return
        held = self._held
        while held and self._settled_below >= held[0][0]:
            self._send(None, *held.popleft()[1])

    def poll(self) -> None:
        """Serve delivery callbacks without blocking and release what they unblock; call once
        per batch."""
        self._producer.poll(0)
        if self._held:
            self._release()

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        while self._held and not remaining and not self._failed:
            self._release()  # everything produced is settled: all of it goes
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
