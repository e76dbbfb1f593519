"""Global compatibility and mode, on a registry of their own (they affect every subject)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from registry_helpers import CT, StartRegistry, record_schema
from typer.testing import CliRunner

V1 = record_schema("Item", {"name": "sku", "type": "string"})
V2 = record_schema("Item", {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"})


@pytest.fixture(scope="module")
def http(start_registry: StartRegistry) -> Iterator[httpx.Client]:
    proc = start_registry()
    with httpx.Client(base_url=proc.url, headers={"Content-Type": CT}, timeout=30) as client:
        yield client
    proc.stop()


def test_global_compatibility(http: httpx.Client) -> None:
    assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    # V2 adds a field without default: forward compatible, not backward.
    assert http.put("/config", json={"compatibility": "FORWARD"}).json() == {
        "compatibility": "FORWARD"}
    assert http.post("/subjects/items/versions", json={"schema": V1}).status_code == 200
    assert http.post("/subjects/items/versions", json={"schema": V2}).status_code == 200
    assert http.get("/config/items", params={"defaultToGlobal": "true"}).json() == {
        "compatibilityLevel": "FORWARD"}
    assert http.put("/config", json={"compatibility": "FULL"}).status_code == 200
    v3 = record_schema("Item", {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"},
                       {"name": "note", "type": "string"})
    assert http.post("/subjects/items/versions", json={"schema": v3}).json()["error_code"] == 409
    assert http.delete("/config").json() == {"compatibilityLevel": "FULL"}
    assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}


def test_global_read_only_mode_rejects_writes(http: httpx.Client) -> None:
    assert http.put("/mode", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    try:
        assert http.get("/mode").json() == {"mode": "READONLY"}
        for response in (
            http.post("/subjects/other/versions", json={"schema": V1}),
            http.delete("/subjects/items"),
            http.delete("/subjects/items/versions/1"),
        ):
            assert response.status_code == 422 and response.json()["error_code"] == 42205
        assert http.get("/subjects").json() == ["items"]  # reads go on
        assert http.post("/subjects/items", json={"schema": V1}).status_code == 200
    finally:
        assert http.put("/mode", json={"mode": "READWRITE"}).json() == {"mode": "READWRITE"}
    assert http.post("/subjects/other/versions", json={"schema": V1}).status_code == 200


def test_global_import_mode(http: httpx.Client) -> None:
    refused = http.put("/mode", json={"mode": "IMPORT"})
    assert refused.status_code == 422 and refused.json()["error_code"] == 42205
    assert http.put("/mode", params={"force": "true"}, json={"mode": "IMPORT"}).json() == {
        "mode": "IMPORT"}
    try:
        schema = json.dumps({"type": "enum", "name": "Channel", "symbols": ["WEB", "POS"]})
        response = http.post("/subjects/channels/versions",
                             json={"schema": schema, "id": 4242, "version": 3})
        assert response.json() == {"id": 4242}
        assert http.get("/subjects/channels/versions").json() == [3]
    finally:
        http.put("/mode", json={"mode": "READWRITE"})
    fresh = json.dumps({"type": "fixed", "name": "Sha", "size": 32})
    assert http.post("/subjects/hashes/versions", json={"schema": fresh}).json() == {"id": 4243}


def test_cli_command_is_a_plain_typer_function() -> None:
    import typer

    from registry.cli import registry_command

    app = typer.Typer()
    app.command("registry")(registry_command)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["registry", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--bootstrap-servers", "--topic", "--auth-file", "--log-level"):
        assert option in result.output
    assert "FSTREAMS_REGISTRY_" in result.output  # options read their environment variables


def test_cli_rejects_invalid_settings_with_a_message() -> None:
    import typer

    from registry.cli import registry_command

    app = typer.Typer()
    app.command("registry")(registry_command)
    app.command("other")(lambda: None)
    for args, fragment in ((["--port", "70000"], "port"), (["--log-level", "LOUD"], "log_level")):
        result = CliRunner().invoke(app, ["registry", *args])
        assert result.exit_code == 2 and fragment in result.output
