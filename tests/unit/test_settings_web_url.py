"""The URL a worker advertises for table routing: Faust forwards an order's query to the
owner's URL, so it must be an address other workers can reach, never a wildcard."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.app import create_app
from streams.settings import Settings


def test_a_concrete_listen_address_is_advertised_as_is() -> None:
    assert Settings(web_host="10.1.2.3", web_port=7000).web_url == "http://10.1.2.3:7000"


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_listen_address_advertises_this_hosts_name(wildcard: str) -> None:
    url = Settings(web_host=wildcard, web_port=6066).web_url
    assert url == f"http://{socket.gethostname()}:6066"


def test_an_explicit_advertised_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSTREAMS_WEB_ADVERTISED_URL", "http://worker-2:6066/")
    settings = Settings(web_host="0.0.0.0")
    assert settings.web_url == "http://worker-2:6066"


def test_the_app_routes_to_the_advertised_url(tmp_path: Path) -> None:
    settings = Settings(web_host="0.0.0.0", web_advertised_url="http://worker-1:6066",
                        data_dir=tmp_path)
    assert str(create_app(settings).app.conf.canonical_url) == "http://worker-1:6066"
