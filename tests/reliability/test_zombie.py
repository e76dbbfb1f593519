"""A worker paused past its group session (a zombie) under exactly-once: it must not commit
what it held when it resumes.

While worker-1 is stopped (SIGSTOP), the group expires its session and worker-2 takes its
partitions, reprocessing what worker-1 had not committed. Worker-1 resumes holding an open
transaction with outputs and changelog records of those partitions; committed, they would
duplicate worker-2's outputs and put stale table records after worker-2's in the changelogs.
It must exit without committing them, and its restart (on the same data dir, as a supervisor
would) restores its tables from the changelogs. Worker-1 commits every 30 s here, so it
surely holds records when it is paused.

The broker side of the fence is checked directly too: offsets sent into a transaction with a
generation the group has moved on from are refused (KIP-447), in the layout librdkafka uses.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.broker.launcher import free_port
from streams.exactly_once import EX_SOFTWARE, Membership, group_metadata
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.settings import Settings
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import wait_for_zero_lag
from tests.reliability.support import (
    Feeder,
    assert_duplicates_detectable,
    assert_live_equals_oracle,
    events_consumed,
    input_progress,
    names_of,
    produce,
    readyz,
    wait_for,
)

pytestmark = pytest.mark.broker


def members(admin: AdminClient, group_id: str) -> set[str]:
    group = admin.describe_consumer_groups([group_id])[group_id].result(10)
    return {member.group_instance_id or member.client_id for member in group.members}


def test_paused_worker_exits_without_committing(app_settings: Settings, start: StartWorker,
                                                tmp_path: Path) -> None:
    guarantee = "exactly_once"
    settings = app_settings.model_copy(update={"processing_guarantee": guarantee})
    start = partial(start, FSTREAMS_PROCESSING_GUARANTEE=guarantee)
    events = generate(GeneratorConfig(orders=150, seed=31)).events
    cut = len(events) // 5
    produce(settings, events[:cut])
    port = free_port()
    worker_1 = {"FSTREAMS_WEB_PORT": str(port), "FSTREAMS_DATA_DIR": str(tmp_path / "w1"),
                "BROKER_COMMIT_INTERVAL": "30"}
    first = start("worker-1", **worker_1)
    second = start("worker-2", FSTREAMS_DATA_DIR=str(tmp_path / "w2"))
    feeder = Feeder(settings, events[cut:], rate=60.0)
    feeder.start()
    wait_for("worker-1 processing", lambda: readyz(port) == 200 and events_consumed(port) > 100,
             timeout=120, workers=[first, second])
    assert first.proc is not None
    os.killpg(first.proc.pid, signal.SIGSTOP)
    try:
        admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
        wait_for("worker-1 out of the group",
                 lambda: len(members(admin, settings.app_id)) == 1, timeout=60,
                 workers=[second])
        # worker-2 reprocesses worker-1's uncommitted input and commits past it
        progress = input_progress(settings)[0]
        wait_for("worker-2 committing alone", lambda: input_progress(settings)[0] > progress,
                 workers=[second])
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    first.proc.wait(60)
    assert first.returncode == EX_SOFTWARE
    assert "no longer a member of the consumer group" in (tmp_path / "worker-1.log").read_text()

    first = start("worker-1", **worker_1)  # what its supervisor does
    feeder.join()
    wait_for("every input record in the topics",
             lambda: input_progress(settings)[1] == len(events), timeout=30)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names_of(settings).inputs,
                      workers=[first, second])
    live = assert_live_equals_oracle(settings)
    assert assert_duplicates_detectable(settings, live) == 0


def test_broker_refuses_offsets_of_a_past_generation(kafka_bootstrap: str) -> None:
    """Our layout of the group metadata is librdkafka's, and with it the broker refuses a
    transactional offset commit from a member of a generation the group has left behind."""
    name = f"fence-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": name,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    old = Consumer({**conf, "group.instance.id": f"{name}-a"})
    old.subscribe([name])
    deadline = time.monotonic() + 30
    while not old.assignment() and time.monotonic() < deadline:
        old.poll(0.2)
    stale = old.consumer_group_metadata()
    generation = int.from_bytes(stale[7:11], "little", signed=True)
    member_id = stale[11 + len(name) + 1:].split(b"\0")[0].decode()
    paused_as = Membership(generation, member_id, f"{name}-a")
    assert group_metadata(name, paused_as) == stale  # the layout librdkafka reads

    newer = Consumer(conf)  # a join: the group moves to the next generation
    newer.subscribe([name])
    deadline = time.monotonic() + 30
    while not newer.assignment() and time.monotonic() < deadline:
        newer.poll(0.2)
        old.poll(0.2)
    assert newer.assignment(), "the second member got no partition"
    producer = Producer({"bootstrap.servers": kafka_bootstrap,
                         "transactional.id": f"{name}-tx"})
    producer.init_transactions(30)
    try:
        producer.begin_transaction()
        with pytest.raises(KafkaException):
            producer.send_offsets_to_transaction([TopicPartition(name, 0, 1)],
                                                 group_metadata(name, paused_as), 30)
        producer.abort_transaction(30)
        producer.begin_transaction()  # the current member's metadata is accepted
        producer.send_offsets_to_transaction([TopicPartition(name, 0, 1)],
                                             newer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    finally:
        old.close()
        newer.close()
