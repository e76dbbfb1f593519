"""The Kafka-backed store: a compacted single-partition topic is the registry's only storage.

Every instance consumes the whole topic from the beginning and applies it to its
``RegistryState`` before it serves anything, then keeps following it. The elected writer appends
keyed records; a write is acknowledged only after this instance has read the records back from
the log and applied them, so the state a client sees next already contains its write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from registry.errors import OperationTimeout, StoreError
from registry.records import MalformedRecord, RecordKey, decode, encode_value
from registry.state import Outcome, RegistryState
from registry.topic import ensure_schema_topic

log = logging.getLogger(__name__)



class KafkaStore:
    def __init__(
        self,
        state: RegistryState,
        bootstrap_servers: str,
        topic: str,
        replication_factor: int | None = None,
        write_timeout: float = 10.0,
    ) -> None:
        self.state = state
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.replication_factor = replication_factor
        self.write_timeout = write_timeout
        self._tp = TopicPartition(topic, 0)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # End offsets are asked on a connection of their own: the broker answers requests on a
        # connection in order, so behind the follower's long-polling fetch they would wait.
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._position = 0  # next offset to apply
        self._advanced = asyncio.Condition()
        # Set when a replayed record conflicted with earlier ones: the writer should repair.
        self.conflict_seen = asyncio.Event()
        self.ready = False

    @property
    def position(self) -> int:
        return self._position

    async def start(self, startup_timeout: float = 60.0) -> None:
        await ensure_schema_topic(self.bootstrap_servers, self.topic, self.replication_factor)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            client_id="fstreams-registry-writer",
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            client_id="fstreams-registry-reader",
        )
        self._offsets = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="fstreams-registry-offsets",
        )
        await self._producer.start()
        await self._consumer.start()
        await self._offsets.start()
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_beginning(self._tp)
        self._task = asyncio.create_task(self._follow(), name="registry-store-follow")
        await self.sync_to_end(startup_timeout)
        self.ready = True
        log.info("store replayed %s records of %s: %s schemas, %s subjects",
                 self._position, self.topic, len(self.state.schemas), len(self.state.subjects))

    async def stop(self) -> None:
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in (self._consumer, self._offsets, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(self._tp, timeout_ms=500)
            except KafkaError as exc:
                log.warning("reading %s failed, retrying: %s", self.topic, exc)
                await asyncio.sleep(0.5)
                continue
            messages = batches.get(self._tp, [])
            if not messages:
                continue
            for msg in messages:
                self._apply(msg.key, msg.value, msg.offset)
            async with self._advanced:
                self._position = messages[-1].offset + 1
                self._advanced.notify_all()

    def _apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        try:
            record_key, record_value = decode(key, value)
            outcome = self.state.apply(record_key, record_value)
        except MalformedRecord as exc:
            log.warning("skipping record at offset %s of %s: %s", offset, self.topic, exc)
            return
        except Exception:
            # One bad record must not stop this instance from following the log.
            log.exception("skipping record at offset %s of %s", offset, self.topic)
            return
        if outcome is Outcome.CONFLICT:
            log.warning("record at offset %s of %s conflicts with earlier records", offset,
                        self.topic)
            self.conflict_seen.set()

    async def end_offset(self) -> int:
        assert self._offsets is not None
        try:
            offsets = await self._offsets.end_offsets([self._tp])
        except KafkaError as exc:
            raise StoreError(f"cannot read the end of {self.topic}: {exc}") from exc
        return int(offsets[self._tp])

    async def wait_until(self, position: int, timeout: float) -> None:
        """Return once every record before ``position`` has been applied."""
        if self._position >= position:
            return
        try:
            async with asyncio.timeout(timeout):
                async with self._advanced:
                    await self._advanced.wait_for(lambda: self._position >= position)
        except TimeoutError as exc:
            raise OperationTimeout(
                f"the store did not reach offset {position} of {self.topic} within {timeout}s"
            ) from exc

    async def sync_to_end(self, timeout: float | None = None) -> None:
        """Apply everything written to the topic so far (by any instance)."""
        await self.wait_until(await self.end_offset(), timeout or self.write_timeout)

    async def write(self, entries: list[tuple[RecordKey, dict[str, Any] | None]]) -> None:
        """Append ``entries`` in order and return once they have been read back and applied."""
        if not entries:
            return
        assert self._producer is not None
        try:
            async with asyncio.timeout(self.write_timeout):
                futures = [
                    await self._producer.send(
                        self.topic, key=key.encode(), value=encode_value(value), partition=0
                    )
                    for key, value in entries
                ]
                metadata = await asyncio.gather(*futures)
        except TimeoutError as exc:
            raise OperationTimeout(f"writing to {self.topic} timed out") from exc
        except KafkaError as exc:
            raise StoreError(f"writing to {self.topic} failed: {exc}") from exc
        await self.wait_until(max(m.offset for m in metadata) + 1, self.write_timeout)
