"""Producer SDK: validate, encode (Confluent wire format) and send records keyed by order_id.

``EventProducer`` is synchronous; ``AsyncEventProducer`` gives asyncio futures per record. Both
use confluent-kafka with the idempotent producer (acks=all, no duplicates on retry), register
each topic's subject ``<topic>-value`` once (or require it to exist with ``auto_register=False``)
and validate before encoding, so a bad record fails with a field path instead of an Avro trace.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.delivery_reports import describe, unconfirmed
from streams.schema_source import SchemaSource
from streams.serde import WireEncoder
from streams.topics import TopicNames
from streams.validation import validator_for
from tables.schema_files import load_schema_text

# TopicNames field -> record name of the values on that topic.
TOPIC_FIELD_RECORDS: dict[str, str] = {
    "orders": "OrderEvent",
    "shipments": "ShipmentEvent",
    "returns": "ReturnEvent",
    "settlements": "SettlementEvent",
    "fulfillment_states": "FulfillmentState",
    "reconciliation_mismatches": "ReconciliationMismatch",
    "sla_alerts": "SlaAlert",
    "fulfillment_metrics": "WindowedMetric",
    "dead_letters": "DeadLetter",
}

# Key field when order_id is null (settlement lines without an order, aggregate alerts).
_FALLBACK_KEY: dict[str, str] = {
    "SettlementEvent": "settlement_line_id",
    "ReconciliationMismatch": "mismatch_id",
    "SlaAlert": "fingerprint",
    "WindowedMetric": "group_key",
}

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes | None]] | dict[str, bytes | None] | None
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class DeliveryFailed(Exception):
    """The broker did not accept a record (after librdkafka's own retries)."""

    def __init__(self, topic: str, key: bytes | None, error: KafkaError) -> None:
        super().__init__(f"delivery to {topic!r} (key {key!r}) failed: {error.str()}")
        self.topic = topic
        self.key = key
        self.error = error


class UnknownTopic(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int


def topic_records(names: TopicNames) -> dict[str, str]:
    """Full topic name -> record name, for every topic of ``names``."""
    return {getattr(names, f): rec for f, rec in TOPIC_FIELD_RECORDS.items()}


def resolve_topic(topic: str, names: TopicNames) -> tuple[str, str]:
    """(full topic name, record name) for a full name or an unprefixed one such as ``orders``."""
    known = topic_records(names)
    if topic in known:
        return topic, known[topic]
    base = TopicNames()
    for f, rec in TOPIC_FIELD_RECORDS.items():
        if topic in (getattr(base, f), f):
            return getattr(names, f), rec
    raise UnknownTopic(f"unknown topic {topic!r}: expected one of {', '.join(sorted(known))} "
                       "(or pass record_name= / --record for a topic outside TopicNames)")


def record_key(record_name: str, record: dict[str, Any]) -> bytes | None:
    """Kafka key: order_id, else the record's fallback id (settlements: settlement_line_id)."""
    value = record.get("order_id")
    if value is None and record_name in _FALLBACK_KEY:
        value = record.get(_FALLBACK_KEY[record_name])
    return None if value is None else str(value).encode()


def producer_config(bootstrap: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        # Idempotent: retries never duplicate or reorder within a partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "client.id": "fstreams-producer",
        # Partition by murmur2 of the key, as Java clients, Kafka Streams and Faust do, so an
        # order lands in the same partition whoever produced it (co-partitioned joins and
        # Faust's key-to-worker routing depend on it; librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
    }
    conf.update(extra or {})
    return conf


def _headers(headers: Headers) -> list[tuple[str, bytes | None]] | None:
    if headers is None:
        return None
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


class _Core:
    """What both producers share: topic routing, validators and one encoder per topic."""

    def __init__(self, bootstrap: str, source: SchemaSource, *, names: TopicNames | None = None,
                 auto_register: bool = True, config: dict[str, Any] | None = None,
                 validate: bool = True, registry_hint: str = "the schema registry") -> None:
        self.source = source
        self.names = names or TopicNames()
        self.auto_register = auto_register
        self.validate = validate
        self.registry_hint = registry_hint
        self.producer = Producer(producer_config(bootstrap, config))
        self._routes = topic_records(self.names)
        self._encoders: dict[str, WireEncoder] = {}
        self.delivered = 0
        self.errors: list[DeliveryFailed] = []
        # Records reported delivered without an offset, to be sent again (see
        # streams.delivery_reports), with the callback that settles each; and how many were.
        self._unconfirmed: deque[tuple[Message, DeliveryCallback]] = deque()
        self._resending = threading.Lock()  # the async poller resends as well as flush
        self.resent = 0

    def record_name(self, topic: str, record_name: str | None) -> str:
        if record_name is not None:
            return record_name
        try:
            return self._routes[topic]
        except KeyError:
            raise UnknownTopic(f"no record type known for topic {topic!r} (known: "
                               f"{', '.join(sorted(self._routes))}); pass record_name=") from None

    def encoder(self, topic: str, record_name: str) -> WireEncoder:
        enc = self._encoders.get(topic)
        if enc is None:
            enc = WireEncoder(self.source, f"{topic}-value", load_schema_text(record_name),
                              auto_register=self.auto_register, registry_hint=self.registry_hint)
            self._encoders[topic] = enc
        return enc

    def prepare(self, topic: str, record: dict[str, Any], record_name: str | None,
                key: bytes | None) -> tuple[bytes | None, bytes]:
        """Validate (ISO timestamps become millis, defaults filled), key and encode."""
        name = self.record_name(topic, record_name)
        if self.validate:
            record = validator_for(name, coerce=True).validate(record)
        if key is None:
            key = record_key(name, record)
        return key, self.encoder(topic, name).encode(record)

    def _track(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.errors.append(DeliveryFailed(msg.topic() or "?", msg.key(), err))

    def _settles(self, err: KafkaError | None, msg: Message, callback: DeliveryCallback) -> bool:
        """Whether this report settles its record; a success without an offset does not: the
        record is kept to be sent again (the order of input events does not matter, their
        consumers deduplicate by event id)."""
        if not unconfirmed(err, msg):
            return True
        log.warning("sending again: %s", describe(msg))
        self._unconfirmed.append((msg, callback))
        return False

    def _resend_unconfirmed(self) -> None:
        """Send again what came back unconfirmed (outside librdkafka's callbacks, where a full
        queue could not be waited on)."""
        with self._resending:
            while self._unconfirmed:
                msg, callback = self._unconfirmed.popleft()
                self._produce(msg.topic() or "", msg.key(), msg.value(), msg.headers(), callback)
                self.resent += 1

    def _flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries, records sent again included; returns how many are
        still queued or unsettled (0 = all done)."""
        deadline = time.monotonic() + timeout
        while True:
            self.producer.flush(max(0.0, deadline - time.monotonic()))
            self._resend_unconfirmed()  # also waits out a resend under way on another thread
            outstanding = len(self.producer) + len(self._unconfirmed)
            if not outstanding or time.monotonic() >= deadline:
                return outstanding

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes | None]] | None,
                 callback: DeliveryCallback) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers,
                                      on_delivery=callback)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.5)


class EventProducer(_Core):
    """Synchronous producer: ``send`` queues (delivery is async in librdkafka), ``flush`` waits."""

    def send(self, topic: str, record: dict[str, Any], *, record_name: str | None = None,
             key: bytes | None = None, headers: Headers = None,
             on_delivery: DeliveryCallback | None = None) -> None:
        """Validate, encode and queue ``record``; raises RecordInvalid / SerdeError at once."""
        key, value = self.prepare(topic, record, record_name, key)
        self.produce_raw(topic, key, value, headers, on_delivery)

    def produce_raw(self, topic: str, key: bytes | None, value: bytes | None,
                    headers: Headers = None, on_delivery: DeliveryCallback | None = None) -> None:
        """Queue bytes as they are (replays, dead letters)."""
        def callback(err: KafkaError | None, msg: Message) -> None:
            if not self._settles(err, msg, callback):
                return
            self._track(err, msg)
            if on_delivery is not None:
                on_delivery(err, msg)

        self._produce(topic, key, value, _headers(headers), callback)
        self.producer.poll(0)
        if self._unconfirmed:
            self._resend_unconfirmed()

    def send_many(self, topic: str, records: Iterable[dict[str, Any]], **kw: Any) -> int:
        n = 0
        for record in records:
            self.send(topic, record, **kw)
            n += 1
        return n

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still queued (0 = all done)."""
        return self._flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        remaining = self.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} records still undelivered after {timeout}s")

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.flush(5.0)


class AsyncEventProducer(_Core):
    """asyncio producer: ``await send(...)`` returns a future of the ``Delivery``.

    A background thread serves librdkafka's delivery callbacks and settles the futures on the
    event loop; registry calls (first record per topic) run in a worker thread.
    """

    def __init__(self, bootstrap: str, source: SchemaSource, **kw: Any) -> None:
        super().__init__(bootstrap, source, **kw)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="fstreams-producer-poll",
                                        daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)
            if self._unconfirmed:
                self._resend_unconfirmed()

    async def send(self, topic: str, record: dict[str, Any], *, record_name: str | None = None,
                   key: bytes | None = None, headers: Headers = None) -> asyncio.Future[Delivery]:
        """Validate, encode and queue; the returned future resolves on broker acknowledgement."""
        name = self.record_name(topic, record_name)
        enc = self.encoder(topic, name)
        if enc.schema_id is None:
            await asyncio.to_thread(enc.resolve)
        key, value = self.prepare(topic, record, name, key)
        return await self.produce_raw(topic, key, value, headers)

    async def send_and_wait(self, topic: str, record: dict[str, Any], **kw: Any) -> Delivery:
        return await (await self.send(topic, record, **kw))

    async def produce_raw(self, topic: str, key: bytes | None, value: bytes | None,
                          headers: Headers = None) -> asyncio.Future[Delivery]:
        if self._loop is None:
            await self.start()
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Delivery] = loop.create_future()

        def settle(err: KafkaError | None, msg: Message) -> None:
            if fut.done():
                return
            if err is None:
                fut.set_result(Delivery(msg.topic() or topic, msg.partition() or 0,
                                        msg.offset() or 0))
            else:
                fut.set_exception(DeliveryFailed(topic, key, err))

        def callback(err: KafkaError | None, msg: Message) -> None:
            if not self._settles(err, msg, callback):
                return
            self._track(err, msg)
            loop.call_soon_threadsafe(settle, err, msg)

        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=_headers(headers),
                                      on_delivery=callback)
                return fut
            except BufferError:
                await asyncio.sleep(0.05)

    async def flush(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self._flush, timeout)

    async def stop(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        remaining = await self.flush(timeout)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, max(0.1, deadline - time.monotonic()))
        self._loop = None
        if remaining:
            raise TimeoutError(f"{remaining} records still undelivered after {timeout}s")

    async def __aenter__(self) -> AsyncEventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(30.0 if exc[0] is None else 5.0)
