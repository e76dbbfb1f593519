"""What the worker serves for the console: the page with versioned assets, the assets with
their content types and cache headers, and runbooks rendered to HTML safely."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from streams.web import console
from tables.sla_rules import load_rules
from tests.console.conftest import Stack


def test_the_page_names_only_assets_that_exist() -> None:
    assets = console.load_assets()
    assert {"console.js", "console.css", "charts.js", "format.js"} <= set(assets)
    page = console.page_html(assets)
    assert "{{" not in page
    for name, version in re.findall(r"/console/static/([a-z0-9_.-]+)\?v=([0-9a-f]+)", page):
        assert assets[name].etag == f'"{version}"'
    imports = re.findall(r'from "\./([a-z0-9_.-]+)"', assets["console.js"].body.decode())
    assert set(imports) == {"charts.js", "format.js"}
    assert {a.content_type for a in assets.values()} == {"text/javascript", "text/css"}


def test_the_assets_are_package_data() -> None:
    # An installed wheel carries streams/web/console/* (pyproject package-data).
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"web/console/*"' in pyproject
    assert (console.ASSETS_DIR / "index.html").is_file()


def test_every_rules_runbook_renders() -> None:
    for rule in load_rules():
        name = Path(rule.runbook).stem
        assert console.RUNBOOK_NAME.match(name) and console.RUNBOOK_NAME.match(f"{name}.md")
        html = console.render_runbook(name, (console.RUNBOOKS_DIR / f"{name}.md").read_text(),
                                      "/x.css")
        assert f"<h1>{name}</h1>" in html and "<h2>" in html


def test_runbook_markdown_cannot_inject_html() -> None:
    text = ("# t\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
            "[click](javascript:alert(1)) [ok](https://example.org/a)\n")
    html = console.render_runbook("t", text, '/x.css"><script>')
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert '<a href="https://example.org/a">ok</a>' in html


@pytest.mark.parametrize("name", ["..", "a/b", "UPPER", "x" * 65, "name.txt", "a-b"])
def test_runbook_names_outside_the_pattern(name: str) -> None:
    assert console.RUNBOOK_NAME.match(name) is None


@pytest.mark.broker
def test_served_with_types_and_cache_headers(stack: Stack) -> None:
    client = stack.client
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert client.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304

    script = re.search(r'src="(/console/static/console\.js\?v=[0-9a-f]+)"', page.text)
    assert script
    versioned = client.get(script.group(1))
    assert versioned.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in versioned.headers["cache-control"]
    plain = client.get("/console/static/format.js")  # as an import asks for it
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert client.get("/console/static/format.js",
                      headers={"If-None-Match": plain.headers["etag"]}).status_code == 304
    css = client.get("/console/static/console.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    for missing in ("/console/static/nope.js", "/console/static/index.html",
                    "/console/static/..%2Fconsole.py"):
        answer = client.get(missing)
        assert answer.status_code == 404 and answer.json()["error"]["status"] == 404

    book = client.get("/runbooks/ship_by_breached.md")  # an alert's relative runbook_url
    assert book.status_code == 200 and book.headers["content-type"].startswith("text/html")
    assert "<h1>ship_by_breached</h1>" in book.text
    unknown = client.get("/runbooks/no_such_rule")
    assert unknown.status_code == 404 and "no runbook" in unknown.json()["error"]["message"]
    bad = httpx.get(f"{stack.url}/runbooks/..%2F..%2Fpyproject.toml", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["status"] == 400
