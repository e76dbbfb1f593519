"""The bulk restore on the real broker: a changelog read in batches into a partition's RocksDB
database ends as Faust's recovery would leave it (latest value per key, tombstones deleted,
aborted transactions skipped, Faust's offset key at the changelog's last offset)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faust.stores.rocksdb import Store
from faust.types import TP

from streams.broker.launcher import free_port
from streams.bulk_restore import Target, plan, restore
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.rocks_options import RocksTuning, SharedMemory, TunedRocksDBOptions
from streams.settings import Settings
from streams.topics import changelog_topic
from tests.kafka_helpers import read_topic, wait_for_zero_lag
from tests.reliability.support import names_of, produce, readyz, wait_for, worker_process

pytestmark = pytest.mark.broker

OFFSET_KEY = Store.offset_key


@pytest.fixture
def topic(kafka_bootstrap: str, unique_name: str) -> str:
    name = f"{unique_name}-changelog"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    return name


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[dict[int, Any]]:
    options = TunedRocksDBOptions(SharedMemory(RocksTuning(block_cache_mb=8, memtables_mb=8)))
    opened = {p: options.open(tmp_path / f"table-{p}.db") for p in (0, 1)}
    yield opened
    for db in opened.values():
        db.close()


def send(producer: Producer, topic: str, partition: int,
         records: list[tuple[bytes, bytes | None]]) -> None:
    for key, value in records:
        producer.produce(topic, value, key, partition=partition)
    assert producer.flush(30) == 0


def watermarks(bootstrap: str, topic: str) -> dict[TP, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bulk-restore-test"})
    try:
        return {TP(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), 10)
                for p in (0, 1)}
    finally:
        consumer.close()


def run_restore(bootstrap: str, topic: str, dbs: dict[int, Any],
                highwaters: dict[TP, int] | None = None) -> dict[TP, Target]:
    """What the worker's recovery does: plan from the stores' persisted offsets, restore."""
    marks = watermarks(bootstrap, topic)
    if highwaters is None:
        highwaters = {tp: high - 1 for tp, (_, high) in marks.items()}
    persisted = {tp: None if (raw := dbs[tp.partition].get(OFFSET_KEY)) is None else int(raw)
                 for tp in marks}
    spans = plan(highwaters, persisted, {tp: low for tp, (low, _) in marks.items()},
                 min_records=1)
    targets = {tp: Target(span, dbs[tp.partition], OFFSET_KEY) for tp, span in spans.items()}
    restore(bootstrap, targets, threading.Event(), time.monotonic() + 60)
    assert all(t.done for t in targets.values())
    return targets


def contents(db: Any) -> dict[bytes, bytes]:
    return {k: v for k, v in db.items() if k != OFFSET_KEY}


def test_restores_latest_values_skips_aborted_and_resumes(kafka_bootstrap: str, topic: str,
                                                          dbs: dict[int, Any]) -> None:
    plain = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    send(plain, topic, 0, [(b"k1", b"v1"), (b"k2", b"v2"), (b"k1", b"v3"), (b"k2", None),
                           (b"k3", b"v4")])
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": topic})
    tx.init_transactions(30)
    for records, commit in (([(b"a", b"1"), (b"b", b"2")], True),
                            ([(b"a", b"aborted"), (b"c", b"aborted")], False),
                            ([(b"b", b"3")], True)):  # the changelog ends with a commit marker
        tx.begin_transaction()
        send(tx, topic, 1, records)
        (tx.commit_transaction if commit else tx.abort_transaction)(30)

    targets = run_restore(kafka_bootstrap, topic, dbs)

    assert contents(dbs[0]) == {b"k1": b"v3", b"k3": b"v4"}
    assert contents(dbs[1]) == {b"a": b"1", b"b": b"3"}
    ends = {tp.partition: high for tp, (_, high) in watermarks(kafka_bootstrap, topic).items()}
    # Faust's persisted offset: the changelog's last offset, markers included, so Faust's
    # recovery finds nothing left to read.
    assert dbs[0].get(OFFSET_KEY) == str(ends[0] - 1).encode() == b"4"
    assert dbs[1].get(OFFSET_KEY) == str(ends[1] - 1).encode()
    assert targets[TP(topic, 0)].applied == 5 and targets[TP(topic, 1)].applied == 3

    send(plain, topic, 0, [(b"k3", None), (b"k4", b"v5")])  # a later restart: only the tail
    targets = run_restore(kafka_bootstrap, topic, dbs)
    assert set(targets) == {TP(topic, 0)} and targets[TP(topic, 0)].applied == 2
    assert contents(dbs[0]) == {b"k1": b"v3", b"k4": b"v5"}
    assert dbs[0].get(OFFSET_KEY) == b"6"


def test_stops_at_the_highwater_faust_measured(kafka_bootstrap: str, topic: str,
                                               dbs: dict[int, Any]) -> None:
    """Records written after Faust measured the highwater are left for Faust to read (its
    consistency check refuses a persisted offset beyond the highwater)."""
    plain = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    send(plain, topic, 0, [(b"k%d" % i, b"v%d" % i) for i in range(10)])
    run_restore(kafka_bootstrap, topic, dbs, highwaters={TP(topic, 0): 6})
    assert contents(dbs[0]) == {b"k%d" % i: b"v%d" % i for i in range(7)}
    assert dbs[0].get(OFFSET_KEY) == b"6"


def group_members(bootstrap: str, group: str) -> list[Any]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return list(admin.describe_consumer_groups([group])[group].result(15).members)


def db_contents(path: Path) -> dict[bytes, bytes]:
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
    try:
        return contents(db)
    finally:
        db.close()


def changelog_contents(bootstrap: str, topic: str, partition: int) -> dict[bytes, bytes]:
    latest: dict[bytes, bytes] = {}
    for p, _, key, value in read_topic(bootstrap, topic):
        if p != partition or key is None:
            continue
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    return latest


def test_worker_restarted_on_an_empty_data_dir_restores_in_bulk(
        app_settings: Settings, tmp_path: Path) -> None:
    """Exactly-once (changelogs in transactions, ending with commit markers): a worker killed
    after its input and restarted under its worker id on an empty data dir restores every
    table partition in bulk, and each partition's database then holds what its changelog
    holds. With the product's 60 s group session, the restart is ready well before that
    session could have expired (static membership), and a clean stop leaves the group at
    once."""
    settings = app_settings.model_copy(update={"processing_guarantee": "exactly_once"})
    produce(settings, generate(GeneratorConfig(orders=60, seed=77)).events)
    port = free_port()
    # No bulk threshold set: under exactly-once any partition behind at all is restored in
    # bulk (Faust's own recovery would wait 10 s for the commit marker ending each changelog).
    env = {"FSTREAMS_PROCESSING_GUARANTEE": "exactly_once", "FSTREAMS_WEB_PORT": str(port)}
    workers = []
    try:
        workers.append(worker_process(settings, "worker-1", tmp_path / "first.log",
                                      FSTREAMS_DATA_DIR=str(tmp_path / "first"), **env))
        wait_for_zero_lag(settings.bootstrap_servers, settings.app_id,
                          names_of(settings).inputs, workers=workers)
        workers[0].kill()
        workers.append(worker_process(settings, "worker-1", tmp_path / "second.log",
                                      FSTREAMS_DATA_DIR=str(tmp_path / "second"), **env))
        wait_for("the restarted worker ready", lambda: readyz(port) == 200, timeout=45,
                 workers=workers[1:])
        assert workers[1].stop() == 0  # SIGTERM: a clean stop
        assert group_members(settings.bootstrap_servers, settings.app_id) == []
    finally:
        for worker in workers:
            worker.stop()

    log = (tmp_path / "second.log").read_text()
    restored = re.search(r"bulk restore: (\d+) records in .* (\d+) of (\d+) partitions "
                         r"complete", log)
    assert restored, "the restart did not restore in bulk"
    assert int(restored.group(1)) > 0 and restored.group(2) == restored.group(3)
    databases = sorted((tmp_path / "second").rglob("*.db"))
    assert len(databases) >= 8  # order-state and order-timers, 4 partitions each
    for path in databases:
        table, _, partition = path.stem.rpartition("-")
        topic = changelog_topic(settings.app_id, table)
        assert db_contents(path) == changelog_contents(settings.bootstrap_servers, topic,
                                                       int(partition)), path.name
