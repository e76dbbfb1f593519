"""JSON Lines parsing and the dry-run path of `fstreams produce` (no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app
from streams.cli.produce import parse_json_lines, run_produce

from .helpers import sample


def test_parse_json_lines_numbers_and_errors() -> None:
    lines = ['{"a": 1}\n', "\n", "  \n", "{bad json}\n", "[1, 2]\n", '{"b": 2}']
    got = list(parse_json_lines(lines))
    assert [n for n, _, _ in got] == [1, 4, 5, 6]
    assert got[0] == (1, {"a": 1}, "")
    assert got[1][1] is None and got[1][2].startswith("invalid JSON")
    assert got[2][2] == "expected a JSON object, got list"
    assert got[3][1] == {"b": 2}


def test_run_produce_dry_run_reports_line_numbers() -> None:
    good = sample("ShipmentEvent")
    bad = {**sample("ShipmentEvent"), "status": "lost"}
    lines = [json.dumps(good), json.dumps(bad), "", "not json", json.dumps(good)]
    summary = run_produce(lines, "shipments", "ShipmentEvent", None)
    assert summary.dry_run and summary.valid == 2 and summary.sent == 0
    assert [n for n, _ in summary.rejected] == [2, 4]
    text = summary.render()
    assert "5 lines, 2 valid, 2 rejected (dry run" in text
    assert "line 2: status: expected enum ShipmentStatus" in text


def test_cli_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    rec = {**sample("OrderEvent"), "event_time": "2025-11-23T12:13:20Z"}
    path.write_text(json.dumps(rec) + "\n")
    result = CliRunner().invoke(app, ["produce", "orders", "--file", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1 lines, 1 valid, 0 rejected" in result.output
    path.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "lines": [{}]}) + "\n")
    result = CliRunner().invoke(app, ["produce", "orders", "-f", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert "line 2: lines[0].line_id: required field of OrderLine is missing" in result.output


def test_cli_unknown_topic_and_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["produce", "nope", "-f", "-", "--dry-run"])
    assert result.exit_code == 2 and "unknown topic 'nope'" in result.output
    result = CliRunner().invoke(app, ["produce", "orders", "-f", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_cli_reads_stdin() -> None:
    lines = json.dumps(sample("ShipmentEvent")) + "\n" + '{"status": "lost"}\n'
    result = CliRunner().invoke(app, ["produce", "shipments", "-f", "-", "--dry-run"],
                                input=lines)
    assert result.exit_code == 1
    assert "shipments: 2 lines, 1 valid, 1 rejected" in result.output
    assert "line 2: " in result.output
