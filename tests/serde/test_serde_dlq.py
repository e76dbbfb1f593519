"""Dead letters on the real broker: send -> list -> show -> replay, and a registry outage."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.broker.launcher import free_port
from streams.cli import app
from streams.dlq import DeadLetterFilter, DeadLetterSink, iter_dead_letters, replay
from streams.procs import ChildProcess, http_ok
from streams.schema_source import RegistrySchemaSource
from streams.serde import BadMagicByte, WireDecoder
from streams.topics import TopicNames

from .kafka_helpers import consume, create_topics, high_watermark

pytestmark = pytest.mark.broker


def _names(unique_name: str, bootstrap: str) -> TopicNames:
    names = TopicNames.with_prefix(f"{unique_name}-")
    create_topics(bootstrap, names.dead_letters, names.orders, names.shipments)
    return names


def _fill(sink: DeadLetterSink, names: TopicNames) -> None:
    sink.send(names.orders, 0, 10, b"o-1", b'{"not": "avro"}', [("trace-id", b"t1")],
              BadMagicByte("first byte is 0x7b"), "deserialize")
    sink.send(names.orders, 0, 11, b"o-2", b"\x00\x00\x00\x00\x63", {"trace-id": "t2"},
              BadMagicByte("unknown"), "deserialize")
    sink.send(names.shipments, 0, 3, b"o-1", b"\x00\x00", None, ValueError("fold bug"), "fold",
              timestamp=1_763_900_000_000)
    assert sink.flush(15) == 0 and sink.sent == 3 and not sink.errors


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["dlq", *args])
    return result.exit_code, result.output


def test_send_list_show_replay(kafka_bootstrap: str, registry_url: str,
                               unique_name: str) -> None:
    names = _names(unique_name, kafka_bootstrap)
    source = RegistrySchemaSource(registry_url)
    _fill(DeadLetterSink(kafka_bootstrap, source, names=names, worker_id="w-test"), names)

    entries = list(iter_dead_letters(kafka_bootstrap, names, source))
    assert [e.offset for e in entries] == [0, 1, 2]
    first = entries[0].record
    assert first is not None
    assert first["original_topic"] == names.orders and first["original_offset"] == 10
    assert first["key"] == b"o-1" and first["value"] == b'{"not": "avro"}'
    assert first["headers"] == [{"key": "trace-id", "value": b"t1"}]
    assert first["error_class"] == "BadMagicByte" and first["stage"] == "deserialize"
    assert first["worker_id"] == "w-test" and isinstance(first["failed_at"], int)
    assert entries[2].record is not None
    assert entries[2].record["original_timestamp"] == 1_763_900_000_000
    only_fold = DeadLetterFilter(error_class="ValueError")
    assert [e.offset for e in iter_dead_letters(kafka_bootstrap, names, source, only_fold)] == [2]

    common = ("--bootstrap", kafka_bootstrap, "--registry-url", registry_url,
              "--topic-prefix", f"{unique_name}-")
    code, out = _cli("list", *common)
    assert code == 0, out
    assert "0:0  " in out and f"{names.orders}[0]@10  key=o-1  deserialize  BadMagicByte" in out
    assert "3 dead letters" in out
    code, out = _cli("list", "--topic", names.shipments, "--json", *common)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["error_class"] for r in rows] == ["ValueError"]
    code, out = _cli("show", "1", "--partition", "0", *common)
    assert code == 0, out
    shown = json.loads(out[out.index("{"):])
    assert shown["original_offset"] == 11 and shown["headers"] == [{"key": "trace-id",
                                                                    "value": "t2"}]
    assert shown["value_decoded"].startswith("<UnknownSchemaId")
    assert _cli("show", "99", *common)[0] == 1

    code, out = _cli("replay", "--topic", names.orders, "--dry-run", *common)
    assert code == 0 and f"matched 2, would replay 2 ({names.orders}: 2)" in out
    assert high_watermark(kafka_bootstrap, names.orders) == 0
    summary = replay(kafka_bootstrap, names, source, DeadLetterFilter(topic=names.orders))
    assert (summary.matched, summary.replayed, summary.failed) == (2, 2, 0)
    replayed = consume(kafka_bootstrap, names.orders, 2)
    assert [(m.key(), m.value(), m.headers()) for m in replayed] == [
        (b"o-1", b'{"not": "avro"}', [("trace-id", b"t1")]),
        (b"o-2", b"\x00\x00\x00\x00\x63", [("trace-id", b"t2")]),
    ]
    assert high_watermark(kafka_bootstrap, names.shipments) == 0


def test_sink_keeps_working_when_the_registry_goes_down(
        kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    names = _names(unique_name, kafka_bootstrap)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    registry = ChildProcess("registry", [sys.executable, "-m", "registry"], env={
        "FSTREAMS_REGISTRY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FSTREAMS_REGISTRY_PORT": str(port),
        "FSTREAMS_REGISTRY_TOPIC": f"_schemas-{uuid.uuid4().hex[:8]}",
    }, log_path=tmp_path / "registry.log").start()
    try:
        registry.wait_until(lambda: http_ok(f"{url}/_ready"), timeout=90, what="ready")
        sink = DeadLetterSink(kafka_bootstrap, RegistrySchemaSource(url), names=names)
    finally:
        registry.stop()
    assert not http_ok(f"{url}/_ready")
    _fill(sink, names)
    # Reading needs no registry either: the local DeadLetter.avsc is the fallback.
    entries = list(iter_dead_letters(kafka_bootstrap, names, RegistrySchemaSource(url)))
    assert [e.record["error_class"] for e in entries if e.record] == [
        "BadMagicByte", "BadMagicByte", "ValueError"]
    decoder = WireDecoder.for_record(RegistrySchemaSource(url), "DeadLetter")
    assert decoder.schema_id_of(sink.encoder.encode(sink.build(
        "t", 0, 0, None, None, None, "rule", "validate"))) == sink.encoder.schema_id
