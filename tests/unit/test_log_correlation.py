"""Log lines about a dead letter and about an alert delivery carry the correlation id, the
order id and the record's coordinates, in the JSON log format operators ship to their logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiokafka.structs import ConsumerRecord

from streams.alerting.config import AlertingConfig
from streams.alerting.receiver_pump import ReceiverPump
from streams.alerting.receivers import receivers_from_config
from streams.alerting.silence_cache import SilenceCache
from streams.alerting.stats import ReceiverStats
from streams.dlq import DeadLetterSink
from streams.ingest import RejectedInput, read_input
from streams.logs import JsonFormatter, LogBudget
from streams.schema_source import InMemorySchemaSource
from streams.serde import WireDecoder, WireEncoder
from tests.alerting.support import WebhookReceiver, alert
from tests.unit.events import T0, line, order

UNREACHABLE = "127.0.0.1:9"  # nothing is sent: the producer's queue is purged unsent


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged meanwhile, one JSON document per line."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(out: io.StringIO, msg_prefix: str) -> list[dict[str, Any]]:
    docs = [json.loads(raw) for raw in out.getvalue().splitlines() if raw.strip()]
    return [doc for doc in docs if doc["msg"].startswith(msg_prefix)]


def test_a_dead_lettered_event_is_logged_with_its_ids(json_log: io.StringIO) -> None:
    source = InMemorySchemaSource()
    encoder = WireEncoder.for_topic(source, "orders", "OrderEvent")
    bad = order("placed", T0, order_id="o-77", lines=[line("l1", -2)])  # negative quantity
    raw = encoder.encode(bad)
    with pytest.raises(RejectedInput) as rejected:  # what the agent and the replay do
        read_input(WireDecoder.for_record(source, "OrderEvent"), "order", raw)
    sink = DeadLetterSink(UNREACHABLE, source, topic="dead-letters", worker_id="w-1",
                          config={"log_level": 0})  # librdkafka: no connection-refused noise
    try:
        sink.send("orders", 3, 41, b"o-77", raw, [], rejected.value.cause,
                  rejected.value.stage, correlation_id=rejected.value.correlation_id)
        sink.send("orders", 3, 42, b"o-78", b"\x00garbage", [], "CorruptRecord", "decode")
    finally:
        sink.producer.purge()
        sink.producer.flush(0)

    first, second = lines(json_log, "dead-lettered")
    assert first["correlation_id"] == "corr-o-77" == bad["correlation_id"]
    assert first["order_id"] == "o-77"
    assert (first["topic"], first["partition"], first["offset"]) == ("orders", 3, 41)
    assert first["stage"] == "validate" and first["level"] == "WARNING"
    assert "negative quantity" in first["msg"]
    # Undecodable: the correlation id is unknowable, and says so instead of being left out.
    assert second["order_id"] == "o-78" and second["correlation_id"] is None
    assert second["offset"] == 42 and second["stage"] == "decode"


def test_a_flood_of_dead_letters_is_logged_within_a_budget() -> None:
    now = [0.0]
    budget = LogBudget(lines=3, window_s=1.0, clock=lambda: now[0])
    assert [budget.allow() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 1.0
    assert budget.allow() == 2  # the next line written says how many were left out
    assert budget.allow() == 0


async def test_an_alert_delivery_is_logged_with_its_ids(json_log: io.StringIO) -> None:
    webhook = await WebhookReceiver(respond=lambda _body: 200).start()
    source = InMemorySchemaSource()
    record = alert("o-91")
    value = WireEncoder.for_topic(source, "sla-alerts", "SlaAlert").encode(record)
    config = AlertingConfig(alertmanager_urls=[webhook.url], backoff_initial_s=0.01)
    receiver = receivers_from_config(config)[0]
    try:
        async with aiohttp.ClientSession() as session:
            pump = ReceiverPump(receiver, topic="sla-alerts", group_id="g", bootstrap=UNREACHABLE,
                                config=config, session=session,
                                decoder=WireDecoder.for_record(source, "SlaAlert"),
                                silences=SilenceCache(UNREACHABLE, "silences"),
                                stats=ReceiverStats(), halt=asyncio.Event())
            try:
                await pump._handle(ConsumerRecord("sla-alerts", 1, 17, 0, 0, b"o-91", value,
                                                  None, 4, len(value), []))
            finally:
                await pump.consumer.stop()
    finally:
        await webhook.stop()

    assert len(webhook.accepted()) == 1
    (delivered,) = lines(json_log, "delivered")
    assert delivered["correlation_id"] == "corr-o-91" == record["correlation_id"]
    assert delivered["order_id"] == "o-91"
    assert (delivered["topic"], delivered["partition"], delivered["offset"]) == (
        "sla-alerts", 1, 17)
    assert delivered["fingerprint"] == record["fingerprint"]
