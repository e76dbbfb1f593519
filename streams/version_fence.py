"""Version fence: a worker that takes over a partition after a crash moves each order's version
past the versions its predecessor emitted but never recorded in the order table.

Why: under at-least-once a batch's FulfillmentStates (output topic) and its order records
(changelog) go to different partitions, so a kill -9 can leave the states delivered and the
records lost. The successor restores the orders as of an earlier batch and reads the lost
batch's events again, interleaved and cut into batches differently, so it would emit an
(order_id, version) already on the topic with other content. A consumer that keeps the first
record of each version would keep a stale state. Under exactly-once both are aborted together
and none of this is needed.

How: every changelog record of the order table carries the header ``fstreams-states-from``, an
offset of the partition's fulfillment-states topic at or below the first state its batch (or
any later batch) emits. Changelog records of a partition arrive in order, so the last record
that survived names a batch whose predecessors are all restored: every state that may be
missing from the table is at or above its header. On the first batch of a partition after an
assignment the worker reads the states from there to the end (one batch's worth, normally) and
raises each order's version to the highest it finds. Records written without the header (the
bulk replay, which flushes everything before it commits) fall back to the states produced
after the record's own timestamp.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streams.topic_reader import read_ranges

HEADER = "fstreams-states-from"
_TIMEOUT_S = 10.0


def header(offset: int) -> list[tuple[str, bytes]]:
    """The header a changelog record of a batch carries (see the module docstring)."""
    return [(HEADER, str(offset).encode())]


def header_offset(headers: Iterable[tuple[str, bytes | None]] | None) -> int | None:
    for name, value in headers or ():
        if name == HEADER and value is not None:
            return int(value)
    return None


@dataclass
class EmittedVersions:
    """What a partition's states topic holds beyond its order table's last record."""

    versions: dict[bytes, int]  # order key -> highest version found
    end: int  # the states partition's end offset when read: nothing below it is unknown now
    read_from: int


def raise_versions(record: dict[str, Any], emitted: int) -> bool:
    """Move the record's version counter up to `emitted` (never down); whether it moved."""
    facts = record["f"]
    if emitted <= facts["v"]:
        return False
    facts["v"] = emitted
    return True


class VersionReader:
    """Reads, per partition, the versions emitted beyond the order table's changelog."""

    def __init__(self, bootstrap: str, changelog: str, states: str,
                 decode: Callable[[bytes], dict[str, Any]]) -> None:
        self.bootstrap = bootstrap
        self.changelog = changelog
        self.states = states
        self.decode = decode

    def read(self, partitions: Iterable[int]) -> dict[int, EmittedVersions]:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": "fstreams-version-fence",  # never joins: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            # The ranges are short and end at known offsets: do not let the broker hold a
            # fetch open for data that will not come (the default 500 ms per fetch).
            "fetch.wait.max.ms": 10,
            "logger": logging.getLogger("fstreams.fence.librdkafka"),
        })
        try:
            return self._read(consumer, list(partitions))
        finally:
            consumer.close()

    def _read(self, consumer: Consumer, partitions: list[int]) -> dict[int, EmittedVersions]:
        states = {p: _watermarks(consumer, self.states, p) for p in partitions}
        changelog = {p: _watermarks(consumer, self.changelog, p) for p in partitions}
        # The last record of each partition's changelog: where unrecorded states may start.
        last = {message.partition(): message for message in read_ranges(
            consumer, self.changelog,
            {p: (high - 1, high) for p, (low, high) in changelog.items() if high > low},
            timeout_s=_TIMEOUT_S)}
        starts = {}
        for p in partitions:
            low, end = states[p]
            starts[p] = max(low, self._states_from(consumer, p, last.get(p), end))
        versions: dict[int, dict[bytes, int]] = {p: {} for p in partitions}
        ranges = {p: (starts[p], states[p][1]) for p in partitions if starts[p] < states[p][1]}
        for message in read_ranges(consumer, self.states, ranges, timeout_s=_TIMEOUT_S):
            key, value = message.key(), message.value()
            if key is None or value is None:
                continue
            found = versions[message.partition()]
            version = self.decode(value)["version"]
            if version > found.get(key, 0):
                found[key] = version
        return {p: EmittedVersions(versions[p], states[p][1], starts[p]) for p in partitions}

    def _states_from(self, consumer: Consumer, partition: int, last: Any,
                     states_end: int) -> int:
        """Offset of the states partition from which a state may be missing from the table,
        given the last record of its changelog (None: nothing restored, or only markers)."""
        if last is None:  # every state on the topic is unrecorded
            return 0
        offset = header_offset(last.headers())
        if offset is not None:
            return offset
        # Written by the bulk replay (or a version before this header): what came after it.
        _, timestamp = last.timestamp()
        found = consumer.offsets_for_times([TopicPartition(self.states, partition, timestamp)],
                                           timeout=_TIMEOUT_S)
        return found[0].offset if found[0].offset >= 0 else states_end


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                               timeout=_TIMEOUT_S)
    return low, high
