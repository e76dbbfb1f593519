"""The producer SDK sends again a record reported delivered without an offset (a success the
client inferred from a later batch, not one the broker reported: see streams.delivery_reports),
and counts a record delivered only once the broker has given it an offset."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.delivery_reports import failure
from streams.producer import AsyncEventProducer, EventProducer
from streams.schema_source import InMemorySchemaSource


class _Report:
    def __init__(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: Any, offset: int | None) -> None:
        self._fields = (topic, key, value, headers)
        self._offset = offset

    def topic(self) -> str:
        return self._fields[0]

    def key(self) -> bytes | None:
        return self._fields[1]

    def value(self) -> bytes | None:
        return self._fields[2]

    def headers(self) -> Any:
        return self._fields[3]

    def partition(self) -> int:
        return 0

    def offset(self) -> int | None:
        return self._offset


class _Librdkafka:
    """Stands in for confluent_kafka.Producer to drive its delivery reports from the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Any, Any]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                headers: Any = None, on_delivery: Any = None) -> None:
        self.sent.append((topic, key, value, headers, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0

    def report(self, index: int, offset: int | None) -> None:
        topic, key, value, headers, callback = self.sent[index]
        callback(None, _Report(topic, key, value, headers, offset))


def _with_fake(producer: Any) -> _Librdkafka:
    fake = _Librdkafka()
    producer.producer = fake
    return fake


def test_a_report_without_an_offset_sends_the_record_again() -> None:
    producer = EventProducer("127.0.0.1:9", InMemorySchemaSource())
    fake = _with_fake(producer)
    seen: list[int | None] = []
    producer.produce_raw("orders", b"o-1", b"bytes", headers=[("h", b"1")],
                         on_delivery=lambda err, msg: seen.append(msg.offset()))

    fake.report(0, None)
    assert (producer.delivered, seen) == (0, [])  # not settled: neither counted nor reported
    assert producer.flush(1.0) == 0  # flush sends it again ...
    assert [s[:4] for s in fake.sent] == [("orders", b"o-1", b"bytes", [("h", b"1")])] * 2
    assert producer.resent == 1

    fake.report(1, 7)  # ... and the broker's report settles it, once
    assert (producer.delivered, seen, producer.errors) == (1, [7], [])


def test_a_report_with_an_offset_settles_at_once() -> None:
    producer = EventProducer("127.0.0.1:9", InMemorySchemaSource())
    fake = _with_fake(producer)
    producer.produce_raw("orders", b"o-1", b"bytes")
    fake.report(0, 0)
    assert producer.flush(1.0) == 0
    assert (len(fake.sent), producer.delivered, producer.resent) == (1, 1, 0)


def test_the_next_send_also_sends_again_what_came_back_unconfirmed() -> None:
    producer = EventProducer("127.0.0.1:9", InMemorySchemaSource())
    fake = _with_fake(producer)
    producer.produce_raw("orders", b"o-1", b"first")
    fake.report(0, None)
    producer.produce_raw("orders", b"o-2", b"second")
    assert [s[2] for s in fake.sent] == [b"first", b"second", b"first"]


def test_the_async_producer_resolves_the_future_once_the_broker_gave_an_offset() -> None:
    async def scenario() -> None:
        producer = AsyncEventProducer("127.0.0.1:9", InMemorySchemaSource())
        fake = _with_fake(producer)
        await producer.start()
        try:
            future = await producer.produce_raw("orders", b"o-1", b"bytes")
            fake.report(0, None)
            assert await producer.flush(1.0) == 0
            assert not future.done() and len(fake.sent) == 2
            fake.report(1, 3)
            delivery = await asyncio.wait_for(future, 5)
            assert (delivery.offset, producer.delivered, producer.resent) == (3, 1, 1)
        finally:
            await producer.stop(1.0)

    asyncio.run(scenario())


class _Error:
    def str(self) -> str:
        return "Broker: Not leader for partition"


def test_what_a_report_proves() -> None:
    written = _Report("orders", b"o-1", b"v", None, 12)
    inferred = _Report("orders", b"o-1", b"v", None, None)
    assert failure(None, written) is None
    assert failure(None, inferred) == ("orders [0] key b'o-1': reported delivered without an "
                                       "offset (inferred by the client from a later batch, not "
                                       "acknowledged by the broker)")
    assert failure(_Error(), inferred) == "orders [0]: Broker: Not leader for partition"  # type: ignore[arg-type]
