"""The version fence's reader on the real broker: from the last changelog record of a partition
it finds where unrecorded states may start (its header, or its timestamp when it has none) and
reports the highest version per order emitted from there on."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.version_fence import VersionReader, header, header_offset, raise_versions

pytestmark = pytest.mark.broker


def _state(version: int) -> bytes:
    return json.dumps({"version": version}).encode()


class Topics:
    def __init__(self, bootstrap: str) -> None:
        name = uuid.uuid4().hex[:8]
        self.changelog, self.states = f"fence-{name}-changelog", f"fence-{name}-states"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(self.changelog, 2, 1),
                                           NewTopic(self.states, 2, 1)]).values():
            future.result(timeout=30)
        self.producer = Producer({"bootstrap.servers": bootstrap})
        self.reader = VersionReader(bootstrap, self.changelog, self.states,
                                    lambda raw: json.loads(raw))

    def state(self, partition: int, key: bytes, version: int, timestamp: int = 0) -> None:
        self.producer.produce(self.states, _state(version), key, partition, timestamp=timestamp)
        self.producer.flush(30)

    def record(self, partition: int, key: bytes, headers: Any = None, timestamp: int = 0) -> None:
        self.producer.produce(self.changelog, b"{}", key, partition, headers=headers,
                              timestamp=timestamp)
        self.producer.flush(30)


def test_states_at_and_after_the_header_of_the_last_record_are_read(kafka_bootstrap: str) -> None:
    topics = Topics(kafka_bootstrap)
    topics.state(0, b"o-1", 1)  # offset 0: recorded before the last batch
    topics.state(0, b"o-2", 1)  # offset 1
    topics.record(0, b"o-1", header(0))
    topics.record(0, b"o-2", header(2))  # the last record: its batch emits from offset 2
    topics.state(0, b"o-1", 2)  # offsets 2..4: emitted, their records lost
    topics.state(0, b"o-3", 1)
    topics.state(0, b"o-1", 3)
    found = topics.reader.read([0, 1])
    assert found[0].versions == {b"o-1": 3, b"o-3": 1}
    assert (found[0].read_from, found[0].end) == (2, 5)
    assert found[1].versions == {} and found[1].end == 0  # an empty partition


def test_no_changelog_record_means_every_state_is_unrecorded(kafka_bootstrap: str) -> None:
    topics = Topics(kafka_bootstrap)
    topics.state(1, b"o-9", 1)
    topics.state(1, b"o-9", 2)
    found = topics.reader.read([1])
    assert found[1].versions == {b"o-9": 2} and found[1].read_from == 0


def test_a_record_without_the_header_bounds_by_its_timestamp(kafka_bootstrap: str) -> None:
    """What the bulk replay writes: states produced after its last record are read, the
    ones before it are not (the replay flushed them with the table)."""
    topics = Topics(kafka_bootstrap)
    now = int(time.time() * 1000)
    topics.state(0, b"o-1", 4, timestamp=now - 2000)
    topics.record(0, b"o-1", timestamp=now - 1000)
    topics.state(0, b"o-1", 5, timestamp=now)
    found = topics.reader.read([0])
    assert found[0].versions == {b"o-1": 5} and found[0].read_from == 1


def test_header_round_trip_and_versions_only_rise() -> None:
    assert header_offset(header(1234)) == 1234
    assert header_offset([("other", b"1")]) is None and header_offset(None) is None
    record: dict[str, Any] = {"f": {"v": 3}}
    assert not raise_versions(record, 2) and record["f"]["v"] == 3
    assert not raise_versions(record, 3)
    assert raise_versions(record, 7) and record["f"]["v"] == 7
