"""docker-compose.yml is checked structurally here (no Docker engine on these machines)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from streams.cli import app

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_declares_a_three_node_kraft_cluster() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    kafkas = {name: s for name, s in services.items() if name.startswith("kafka-")}
    assert len(kafkas) == 3
    node_ids = {s["environment"]["KAFKA_NODE_ID"] for s in kafkas.values()}
    assert node_ids == {1, 2, 3}
    voters = next(iter(kafkas.values()))["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == ",".join(f"{i}@kafka-{i}:9093" for i in (1, 2, 3))
    for s in kafkas.values():
        assert s["image"].startswith("apache/kafka:4.")
        assert s["environment"]["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 3
    for volume in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        assert volume in doc["volumes"], f"undeclared volume {volume}"


def test_compose_commands_exist_in_the_cli() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    runner = CliRunner()
    app_services = {n: s for n, s in doc["services"].items() if "build" in s}
    assert {"registry", "worker-1", "worker-2", "generator"} <= set(app_services)
    for name, service in app_services.items():
        command = service["command"]
        result = runner.invoke(app, [command[0], "--help"])
        assert result.exit_code == 0, f"{name}: fstreams {command[0]} --help failed"
        for flag in (c for c in command if c.startswith("--")):
            assert flag in result.output, f"{name}: fstreams {command[0]} has no {flag}"
