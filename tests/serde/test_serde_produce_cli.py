"""`fstreams produce` against the real broker and registry: summary, line numbers, exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireDecoder

from .helpers import sample
from .kafka_helpers import consume, create_topics, high_watermark

pytestmark = pytest.mark.broker


def _produce(tmp_path: Path, lines: list[str], bootstrap: str, registry_url: str, prefix: str,
             *extra: str) -> tuple[int, str]:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, [
        "produce", "orders", "--file", str(path), "--bootstrap", bootstrap,
        "--registry-url", registry_url, "--topic-prefix", prefix, "--timeout", "20", *extra])
    return result.exit_code, result.output


def _order(i: int, **changes: object) -> str:
    return json.dumps({**sample("OrderEvent"), "event_id": f"e{i}", "order_id": f"o-{i}",
                       "event_time": "2025-11-23T12:13:20Z", **changes})


def test_good_file(tmp_path: Path, kafka_bootstrap: str, registry_url: str,
                   unique_name: str) -> None:
    prefix = f"{unique_name}-"
    create_topics(kafka_bootstrap, f"{prefix}orders")
    code, out = _produce(tmp_path, [_order(1), _order(2), "", _order(3)], kafka_bootstrap,
                         registry_url, prefix)
    assert code == 0, out
    assert f"{prefix}orders: 4 lines, sent 3, rejected 0" in out
    msgs = consume(kafka_bootstrap, f"{prefix}orders", 3)
    decoder = WireDecoder.for_record(RegistrySchemaSource(registry_url), "OrderEvent")
    assert [m.key() for m in msgs] == [b"o-1", b"o-2", b"o-3"]
    first = decoder.decode(msgs[0].value())
    assert first["event_time"] == 1_763_900_000_000 and first["event_id"] == "e1"


def test_bad_file(tmp_path: Path, kafka_bootstrap: str, registry_url: str,
                  unique_name: str) -> None:
    prefix = f"{unique_name}-"
    create_topics(kafka_bootstrap, f"{prefix}orders")
    lines = [_order(1), _order(2, type="shipped"), "{oops", _order(4, currency=None), _order(5)]
    code, out = _produce(tmp_path, lines, kafka_bootstrap, registry_url, prefix)
    assert code == 1, out
    assert "5 lines, sent 2, rejected 3" in out
    assert "line 2: type: expected enum OrderEventType" in out
    assert "line 3: invalid JSON" in out
    assert "line 4: currency: expected string, got None" in out
    assert [m.key() for m in consume(kafka_bootstrap, f"{prefix}orders", 2)] == [b"o-1", b"o-5"]


def test_dry_run_sends_nothing(tmp_path: Path, kafka_bootstrap: str, registry_url: str,
                               unique_name: str) -> None:
    prefix = f"{unique_name}-"
    create_topics(kafka_bootstrap, f"{prefix}orders")
    code, out = _produce(tmp_path, [_order(1), _order(2)], kafka_bootstrap, registry_url, prefix,
                         "--dry-run")
    assert code == 0, out
    assert "2 lines, 2 valid, 0 rejected (dry run: nothing sent)" in out
    assert high_watermark(kafka_bootstrap, f"{prefix}orders") == 0


def test_no_auto_register_names_the_missing_subject(tmp_path: Path, kafka_bootstrap: str,
                                                    registry_url: str, unique_name: str) -> None:
    prefix = f"{unique_name}-"
    create_topics(kafka_bootstrap, f"{prefix}orders")
    code, out = _produce(tmp_path, [_order(1)], kafka_bootstrap, registry_url, prefix,
                         "--no-auto-register")
    assert code == 2, out
    assert f"subject '{prefix}orders-value' does not exist" in out
    assert f"/subjects/{prefix}orders-value/versions" in out
    assert high_watermark(kafka_bootstrap, f"{prefix}orders") == 0
