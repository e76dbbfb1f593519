"""`fstreams generate` end to end through the CLI (no broker: JSONL output)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app

runner = CliRunner()


def _run(*args: str) -> object:
    return runner.invoke(app, ["generate", *args])


def test_writes_jsonl_and_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.json"
    result = _run("--orders", "60", "--seed", "5", "--start", "2026-11-01T00:00:00Z",
                  "--span", "6h", "--out", str(out), "--truth", str(truth))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {tuple(sorted(line)) for line in lines} == {("key", "topic", "value")}
    assert {line["topic"] for line in lines} <= {"orders", "shipments", "returns",
                                                 "settlements"}
    data = json.loads(truth.read_text())
    assert data["counts"]["events_emitted"] == len(lines)
    assert data["config"]["seed"] == 5
    assert data["config"]["span_ms"] == 6 * 3_600_000
    assert data["thresholds"]["ALLOCATION_SLA_MS"] == 24 * 3_600_000
    assert len(data["orders"]) + len(data["orphans"]) == 60
    # JSONL carries no raw garbage unless asked: every dead letter is a semantic one
    invalid = [ev for ev in lines if ev["value"].get("currency") == "ZZZ"
               or any(ln["quantity"] < 0 for ln in ev["value"].get("lines", []))]
    assert data["dead_letters"]["count"] == len(invalid) > 0


def test_same_seed_same_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _run("-n", "30", "-s", "9", "-o", str(a)).exit_code == 0
    assert _run("-n", "30", "-s", "9", "-o", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_garbage_goes_base64_into_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = _run("-n", "30", "--garbage", "--bad", "8", "--mix", "happy=1", "-o", str(out))
    assert result.exit_code == 0, result.output
    raw = [json.loads(line) for line in out.read_text().splitlines() if '"raw"' in line]
    assert len(raw) == 4
    for line in raw:
        assert line["value"] is None
        assert base64.b64decode(line["raw"])[:1] != b"\x00"


def test_stdout_output() -> None:
    result = _run("-n", "5", "--bad", "0", "--duplicates", "0", "-o", "-")
    assert result.exit_code == 0
    first = json.loads(result.stdout.splitlines()[0])
    assert first["key"] == first["value"]["order_id"] or first["topic"] == "settlements"


def test_help_and_stories() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for flag in ("--orders", "--seed", "--mix", "--out", "--truth", "--rate", "--bootstrap"):
        assert flag in result.output
    listing = _run("--stories")
    assert "duplicate_settlement" in listing.output


def test_bad_mix_is_a_usage_error() -> None:
    result = _run("-n", "5", "--mix", "happy=lots", "-o", "-")
    assert result.exit_code == 2


def test_rate_paces_file_output(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = _run("-n", "3", "--bad", "0", "--duplicates", "0", "--rate", "400", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) > 10
