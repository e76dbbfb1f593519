"""TableWriter at-least-once: RocksDB holds only writes whose changelog record Kafka has
acknowledged, and a batch reads the newest write of a key whether acknowledged or not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import rocksdict

from streams.batching import KeyedBatch, TableWriter


class HeldAcks:
    def __init__(self) -> None:
        self.waiting: list[Any] = []
        self.sent: list[tuple[bytes, bytes | None]] = []

    def produce_after_outputs(self, topic: str, key: bytes, value: bytes | None,
                              headers: Any, partition: int, then: Any) -> None:
        self.sent.append((key, value))
        self.waiting.append(then)

    def ack(self, count: int) -> None:
        for then in self.waiting[:count]:
            then()
        del self.waiting[:count]


EVENT = SimpleNamespace(message=SimpleNamespace(partition=0))


def setup(tmp_path: Path) -> tuple[rocksdict.Rdict, HeldAcks, TableWriter]:
    db = rocksdict.Rdict(str(tmp_path / "orders"), options=rocksdict.Options(raw_mode=True))
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db),
                            changelog_topic=SimpleNamespace(get_topic_name=lambda: "orders"))
    sink = HeldAcks()
    return db, sink, TableWriter(table, sink, after_outputs=True)  # type: ignore[arg-type]


def batch(writer: TableWriter) -> KeyedBatch[dict[str, int]]:
    return KeyedBatch(writer.table, writer)


def test_reads_see_unacknowledged_writes_and_rocksdb_only_acknowledged_ones(
        tmp_path: Path) -> None:
    db, sink, writer = setup(tmp_path)
    first = batch(writer)
    first.put(b"a", {"v": 1}, EVENT)  # type: ignore[arg-type]
    first.flush()
    assert db.get(b"a") is None
    assert batch(writer).get(b"a", EVENT) == {"v": 1}  # type: ignore[arg-type]
    sink.ack(1)
    assert db.get(b"a") == b'{"v":1}'
    second = batch(writer)
    second.delete(b"a", EVENT)  # type: ignore[arg-type]
    second.flush()
    assert batch(writer).get(b"a", EVENT) is None  # type: ignore[arg-type]
    assert db.get(b"a") == b'{"v":1}'  # the delete is not acknowledged yet
    sink.ack(1)
    assert db.get(b"a") is None


def test_an_older_acknowledgement_leaves_the_newer_write_pending(tmp_path: Path) -> None:
    db, sink, writer = setup(tmp_path)
    for version in (1, 2, 3):
        b = batch(writer)
        b.put(b"a", {"v": version}, EVENT)  # type: ignore[arg-type]
        b.flush()
    sink.ack(2)
    assert db.get(b"a") == b'{"v":2}'
    assert batch(writer).get(b"a", EVENT) == {"v": 3}  # type: ignore[arg-type]
    sink.ack(1)
    assert writer.unacked == {0: {}}
    assert db.get(b"a") == b'{"v":3}'
    assert [value for _, value in sink.sent] == [b'{"v":1}', b'{"v":2}', b'{"v":3}']
