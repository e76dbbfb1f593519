"""Ids survive log compaction: a hard-deleted schema's id is not handed out again after the
broker has compacted its records (and tombstones) away."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from registry_helpers import StartRegistry

# Roll segments after 100 ms and clean anything dirty at once, tombstones included.
EAGER_COMPACTION = {
    "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.001",
    "delete.retention.ms": "0", "min.compaction.lag.ms": "0",
}


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=EAGER_COMPACTION)])
    finally:
        await admin.close()


async def keys_in_log(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        keys = []
        while await consumer.position(tp) < end:
            for msg in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                keys.append(json.loads(msg.key))
        return keys
    finally:
        await consumer.stop()


def test_ids_are_not_reused_after_compaction(
    kafka_bootstrap: str, start_registry: StartRegistry
) -> None:
    topic = f"_schemas-compact-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(kafka_bootstrap, topic))
    first = start_registry(topic=topic)
    http = httpx.Client(base_url=first.url, timeout=30)

    def schema(name: str) -> dict[str, str]:
        return {"schema": json.dumps({"type": "record", "name": name, "fields": []})}

    kept = http.post("/subjects/kept/versions", json=schema("Kept")).json()["id"]
    doomed = http.post("/subjects/doomed/versions", json=schema("Doomed")).json()["id"]
    assert doomed == kept + 1
    http.delete("/subjects/doomed")
    assert http.delete("/subjects/doomed", params={"permanent": "true"}).json() == [1]

    # Keep writing (one key, many values) so segments roll and the cleaner gets to work, until
    # every record of the deleted subject, its tombstone included, is gone from the log.
    deadline = time.monotonic() + 60
    levels = ["FULL", "NONE"]
    while True:
        time.sleep(0.3)
        http.put("/config/kept", json={"compatibility": levels[int(time.monotonic()) % 2]})
        keys = asyncio.run(keys_in_log(kafka_bootstrap, topic))
        if not any(k.get("subject") == "doomed" for k in keys):
            break
        assert time.monotonic() < deadline, f"the log was not compacted: {keys}"
    http.close()
    first.stop()

    second = start_registry(topic=topic)
    with httpx.Client(base_url=second.url, timeout=30) as client:
        assert client.get("/subjects").json() == ["kept"]
        assert client.get("/subjects/kept/versions/1").json()["id"] == kept
        again = client.post("/subjects/doomed/versions", json=schema("Doomed")).json()["id"]
        assert again == doomed + 1  # the compacted-away id stays retired
    second.stop()
