"""Several instances on one topic, failover and restarts.

The module shares one pair of instances (starting processes is the expensive part); the tests
run in file order as one scenario: concurrent registrations through both, a stale writer's
record, failover of the writer, and finally a restart from the log alone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from registry_helpers import RegistryProcess, StartRegistry

from registry import records


def schema(name: str, n: int = 0) -> str:
    fields = [{"name": f"f{i}", "type": "int", "default": 0} for i in range(n)]
    return json.dumps({"type": "record", "name": name, "fields": fields})


# One pooled client for the module: a client per call would rebuild its TLS context each time.
HTTP = httpx.Client(timeout=30)


def register(url: str, subject: str, text: str) -> int:
    response = HTTP.post(f"{url}/subjects/{subject}/versions", json={"schema": text})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def snapshot(url: str) -> dict[str, list[tuple[int, int, bool]]]:
    """subject -> [(version, id, deleted)] as one instance sees it."""
    out = {}
    for subject in HTTP.get(f"{url}/subjects", params={"deleted": "true"}).json():
        live_response = HTTP.get(f"{url}/subjects/{subject}/versions")
        live = set(live_response.json()) if live_response.status_code == 200 else set()
        versions = HTTP.get(f"{url}/subjects/{subject}/versions",
                            params={"deleted": "true"}).json()
        out[subject] = [
            (v, HTTP.get(f"{url}/subjects/{subject}/versions/{v}",
                         params={"deleted": "true"}).json()["id"], v not in live)
            for v in versions
        ]
    return out


@pytest.fixture(scope="module")
def pair(start_registry: StartRegistry) -> Iterator[list[RegistryProcess]]:
    a = start_registry()
    b = start_registry(topic=a.topic, group_id=a.group_id)
    instances = [a, b]
    yield instances
    for proc in instances:
        proc.stop()


def writer_of(pair: list[RegistryProcess]) -> RegistryProcess:
    url = HTTP.get(f"{pair[-1].url}/_ready").json()["writer"]
    return next(p for p in pair if p.url == url)


def test_two_instances_share_one_consistent_id_space(pair: list[RegistryProcess]) -> None:
    a, b = pair
    # b's joining re-ran the election; each instance learns the (sticky) result on its own.
    deadline = time.monotonic() + 15
    while {HTTP.get(f"{p.url}/_ready").json()["writer"] for p in pair} != {a.url}:
        assert time.monotonic() < deadline, "the instances never agreed on the writer"
        time.sleep(0.1)
    # Both instances get registrations at once; many schemas are sent to both, under
    # different subjects, so the writer must hand each schema exactly one id.
    names = [f"S{uuid.uuid4().hex[:6]}" for _ in range(12)]
    jobs = [(url, f"{url.rsplit(':', 1)[1]}-{name}-value", schema(name))
            for name in names for url in (a.url, b.url)]
    jobs += [(b.url, "shared-value", schema("Shared", n)) for n in range(6)]

    def run(job: tuple[str, str, str]) -> tuple[str, int]:
        url, subject, text = job
        return text, register(url, subject, text)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs))

    ids_by_schema: dict[str, set[int]] = {}
    schemas_by_id: dict[int, set[str]] = {}
    for text, schema_id in results:
        ids_by_schema.setdefault(text, set()).add(schema_id)
        schemas_by_id.setdefault(schema_id, set()).add(text)
    assert all(len(v) == 1 for v in ids_by_schema.values()), ids_by_schema
    assert all(len(v) == 1 for v in schemas_by_id.values()), schemas_by_id
    assert HTTP.get(f"{b.url}/subjects/shared-value/versions").json() == [1, 2, 3, 4, 5, 6]
    # Both instances serve the same state (b follows the log a writes).
    wait_for_same_state(a, b)
    for schema_id, texts in schemas_by_id.items():
        for url in (a.url, b.url):
            served = HTTP.get(f"{url}/schemas/ids/{schema_id}").json()["schema"]
            assert json.loads(served) == json.loads(next(iter(texts)))


def wait_for_same_state(*instances: RegistryProcess) -> None:
    deadline = time.monotonic() + 10
    while len({json.dumps(snapshot(p.url)) for p in instances}) > 1:
        assert time.monotonic() < deadline, "instances disagree"
        time.sleep(0.2)


def test_writer_repairs_a_conflicting_record_from_a_stale_writer(
    kafka_bootstrap: str, pair: list[RegistryProcess]
) -> None:
    """A record written by a stale writer (same subject version, other id) is refused by every
    instance, and the writer re-publishes the winner so compaction cannot keep the loser."""
    a, b = pair
    winner = register(b.url, "contested-value", schema("Winner"))
    key = records.schema_key("contested-value", 1)
    stale = {"subject": "contested-value", "version": 1, "id": winner + 100,
             "schema": schema("Loser"), "deleted": False}

    async def inject_and_read_back() -> list[dict[str, object] | None]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(a.topic, key=key.encode(),
                                         value=json.dumps(stale).encode(), partition=0)
        finally:
            await producer.stop()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            values = await values_for(kafka_bootstrap, a.topic, key.encode())
            if len(values) >= 3:
                return values
            await asyncio.sleep(0.2)
        return await values_for(kafka_bootstrap, a.topic, key.encode())

    values = asyncio.run(inject_and_read_back())
    assert [v["id"] if v else None for v in values] == [winner, winner + 100, winner]
    for p in pair:
        assert HTTP.get(f"{p.url}/subjects/contested-value/versions/1").json()["id"] == winner
        assert HTTP.get(f"{p.url}/schemas/ids/{winner + 100}").status_code == 404
    wait_for_same_state(a, b)


def test_writer_failover(pair: list[RegistryProcess]) -> None:
    old = writer_of(pair)
    survivor = next(p for p in pair if p is not old)
    before = register(survivor.url, "before-value", schema("Before"))  # forwarded to the writer
    assert old.stop(signal.SIGINT) == 0  # Ctrl-C: a clean shutdown, leaving the group at once
    pair.remove(old)
    deadline = time.monotonic() + 30
    while HTTP.get(f"{survivor.url}/_ready").json()["writer"] != survivor.url:
        assert time.monotonic() < deadline, "the survivor never became the writer"
        time.sleep(0.1)
    assert register(survivor.url, "after-value", schema("After")) == before + 1


def test_restart_keeps_subjects_versions_ids_and_settings(
    pair: list[RegistryProcess], start_registry: StartRegistry
) -> None:
    [current] = pair
    url = current.url
    ids = [register(url, "orders-value", schema("Order", n)) for n in range(3)]
    ids.append(register(url, "shipments-value", schema("Order", 1)))  # shares an id
    assert ids[3] == ids[1]
    HTTP.delete(f"{url}/subjects/orders-value/versions/3")
    gone = register(url, "tmp-value", schema("Temp"))
    HTTP.delete(f"{url}/subjects/tmp-value")
    HTTP.delete(f"{url}/subjects/tmp-value", params={"permanent": "true"})
    HTTP.put(f"{url}/config/orders-value", json={"compatibility": "FULL"})
    HTTP.put(f"{url}/mode/shipments-value", json={"mode": "READONLY"})
    before = snapshot(url)
    assert current.stop() == 0  # SIGTERM: a clean shutdown

    restarted = start_registry(topic=current.topic, group_id=current.group_id)
    pair[:] = [restarted]
    assert snapshot(restarted.url) == before
    assert HTTP.get(f"{restarted.url}/config/orders-value").json() == {
        "compatibilityLevel": "FULL"}
    assert HTTP.get(f"{restarted.url}/mode/shipments-value").json() == {"mode": "READONLY"}
    served = HTTP.get(f"{restarted.url}/schemas/ids/{ids[2]}").json()["schema"]
    assert json.loads(served) == json.loads(schema("Order", 2))
    # New ids continue after every id ever handed out, the hard-deleted one included.
    assert register(restarted.url, "later-value", schema("Later")) == gone + 1


async def values_for(bootstrap: str, topic: str, key: bytes) -> list[dict[str, object] | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[dict[str, object] | None] = []
        while await consumer.position(tp) < end:
            for msg in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                if msg.key == key:
                    found.append(json.loads(msg.value) if msg.value is not None else None)
        return found
    finally:
        await consumer.stop()
