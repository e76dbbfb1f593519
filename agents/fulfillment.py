"""The fulfillment agent: the co-partitioned join of the four input streams, one state per order.

Faust's stream-stream joins are stubs, so the join is what Kafka Streams does underneath: all
four topics are keyed by order_id with equal partition counts, one agent consumes them together,
and every event is folded into the order's state in a RocksDB table (changelog in Kafka) by the
pure `tables.fulfillment.step`. A changed canonical state goes to `fulfillment-states`.

The loop is batch-shaped for speed (see streams/batching.py and streams/sink.py): decode and
fold every event of a batch, write each touched order once, hand outputs to librdkafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from faust.types import EventT, TableT

from streams.app import Pipeline
from streams.batching import KeyedBatch
from streams.schema_source import RegistryUnavailable
from streams.serde import DecodeError
from streams.topics import ORDER_STATE_TABLE
from tables import fulfillment

log = logging.getLogger(__name__)
STAGE_DECODE = "decode"
STAGE_VALIDATE = "validate"
STAGE_FOLD = "fold"


class FulfillmentProcessor:
    """One batch of input events -> table writes, canonical states and dead letters."""

    def __init__(self, pipeline: Pipeline, table: TableT) -> None:
        services = pipeline.services
        self.names = pipeline.names
        self.table = table
        self.decoders = services["decoders"]
        self.sink = services["sink"]
        self.dead_letters = services["dead_letters"]
        self.counters: dict[str, int] = services.setdefault("counters", {})
        self.kinds = {topic: self.names.kind_of(topic) for topic in self.names.inputs}
        self.states_topic = self.names.fulfillment_states
        self.encode_state = services["encoders"][self.states_topic].encode

    async def process(self, events: Sequence[EventT]) -> None:
        batch: KeyedBatch[dict[str, Any]] = KeyedBatch(self.table)
        counters = self.counters
        for event in events:
            msg = event.message
            counters[msg.topic] = counters.get(msg.topic, 0) + 1
            try:
                record = self._decode(event)
            except RegistryUnavailable:
                record = await self._decode_when_registry_returns(event)
            if record is None:
                continue
            kind = self.kinds[msg.topic]
            key = msg.key or b""
            state = batch.get(key, event)
            if state is None:
                state = fulfillment.new_state(key.decode())
            try:
                emitted = fulfillment.step(state, kind, record)
            except Exception as exc:  # a fold bug must not stop the stream; keep the evidence
                log.exception("fold failed", extra={"order_id": key.decode(errors="replace")})
                self._dead_letter(event, exc, STAGE_FOLD)
                continue
            batch.put(key, state, event)
            if emitted is not None:
                self.sink.produce(self.states_topic, key, self.encode_state(emitted))
                counters["states_emitted"] = counters.get("states_emitted", 0) + 1
        batch.flush()
        self.sink.poll()

    async def _decode_when_registry_returns(self, event: EventT) -> dict[str, Any] | None:
        """A new writer schema id while the registry is down: the record is fine, we just
        cannot read it yet. Hold the partition (retry with backoff) rather than dead-letter."""
        delay = 0.5
        while True:
            log.warning("schema registry unreachable; retrying in %.1fs", delay,
                        extra={"topic": event.message.topic, "offset": event.message.offset})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                return self._decode(event)
            except RegistryUnavailable:
                continue

    def _decode(self, event: EventT) -> dict[str, Any] | None:
        msg = event.message
        try:
            record: dict[str, Any] = self.decoders[msg.topic].decode(msg.value)
        except DecodeError as exc:
            self._dead_letter(event, exc, STAGE_DECODE)
            return None
        reason = fulfillment.validate(self.kinds[msg.topic], record)
        if reason is not None:
            self._dead_letter(event, ValueError(reason), STAGE_VALIDATE)
            return None
        return record

    def _dead_letter(self, event: EventT, exc: BaseException, stage: str) -> None:
        msg = event.message
        self.counters["dead_lettered"] = self.counters.get("dead_lettered", 0) + 1
        self.dead_letters.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                               list(msg.headers or []), exc, stage)


def register(pipeline: Pipeline) -> None:
    app, settings, names = pipeline.app, pipeline.settings, pipeline.names
    table = pipeline.bytes_table(ORDER_STATE_TABLE, help="per-order fold state")
    pipeline.services["order_table"] = table
    processor = FulfillmentProcessor(pipeline, table)
    source = pipeline.topic(*names.inputs)

    @app.agent(source, name="fulfillment")
    async def fulfillment_agent(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events,
                                               settings.batch_timeout_s):
            await processor.process(events)
