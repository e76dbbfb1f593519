"""The operations console: `GET /` (the page), `/console/static/{file}` (its JS and CSS) and
`GET /runbooks/{name}` (a runbook rendered to HTML on the server).

The page is static and talks to the query API from the browser, so it needs no build step and
no internet. Assets are read once at start; the page references them with a content hash
(`?v=`), so browsers may cache them for a long time and still see a new release at once.
Runbooks are rendered with markdown-it in its safe mode: raw HTML in a runbook is shown as
text, and links with script schemes are dropped.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path

from faust.web import Request, Response, View
from markdown_it import MarkdownIt

from streams.app import Pipeline
from streams.web.errors import json_error
from tables.sla_rules import DEFAULT_RULES_PATH

ASSETS_DIR = Path(__file__).resolve().parent / "console"
RUNBOOKS_DIR = DEFAULT_RULES_PATH.parent
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
ASSET_NAME = re.compile(r"^[a-z0-9_-]{1,64}\.(?:js|css|svg)$")
# A rule's runbook is runbooks/<snake_case>.md (tables/sla_rules.py); the .md suffix is allowed
# so an alert's relative runbook_url ("runbooks/x.md") opens the rendered page as it is.
RUNBOOK_NAME = re.compile(r"^([a-z0-9_]{1,64})(?:\.md)?$")
IMMUTABLE = "public, max-age=31536000, immutable"  # only ever asked for with ?v=<hash>
REVALIDATE = "no-cache"  # may be stored, but asked again (cheap: ETag -> 304)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(directory: Path = ASSETS_DIR) -> dict[str, Asset]:
    assets = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in CONTENT_TYPES and ASSET_NAME.match(path.name):
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:16]
            assets[path.name] = Asset(body, CONTENT_TYPES[path.suffix], f'"{digest}"')
    return assets


def page_html(assets: dict[str, Asset], directory: Path = ASSETS_DIR) -> str:
    """index.html with every `{{asset:name}}` replaced by the asset's versioned URL."""
    def url(match: re.Match[str]) -> str:
        asset = assets[match.group(1)]
        return f"/console/static/{match.group(1)}?v={asset.etag.strip(chr(34))}"
    return re.sub(r"\{\{asset:([a-z0-9_.-]+)\}\}", url,
                  (directory / "index.html").read_text(encoding="utf-8"))


_markdown = MarkdownIt("js-default", {"html": False, "linkify": False})


def render_runbook(name: str, text: str, stylesheet: str) -> str:
    body = _markdown.render(text)
    title = html.escape(name.replace("_", " "))
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Runbook: {title} · fulfillment-streams</title>"
        f"<link rel=\"stylesheet\" href=\"{html.escape(stylesheet)}\"></head>"
        "<body class=\"runbook\"><header class=\"topbar\">"
        "<a class=\"brand\" href=\"/#alerts\">← Operations console</a>"
        f"<span class=\"muted\">runbooks/{html.escape(name)}.md</span></header>"
        f"<main id=\"runbook\" class=\"runbook-body\">{body}</main></body></html>\n")


def _not_modified(request: Request, etag: str) -> bool:
    return etag in request.headers.get("If-None-Match", "")


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    assets = load_assets()
    page = page_html(assets).encode()
    page_etag = f'"{hashlib.sha256(page).hexdigest()[:16]}"'
    stylesheet = f"/console/static/console.css?v={assets['console.css'].etag.strip(chr(34))}"

    @app.page("/", name="console")
    async def console(view: View, request: Request) -> Response:
        headers = {"Cache-Control": REVALIDATE, "ETag": page_etag}
        if _not_modified(request, page_etag):
            return view.bytes(b"", status=304, headers=headers)
        return view.bytes(page, headers={
            **headers, "Content-Type": "text/html; charset=utf-8"})

    @app.page("/console/static/{file}", name="console_static")
    async def static(view: View, request: Request, file: str) -> Response:
        asset = assets.get(file) if ASSET_NAME.match(file) else None
        if asset is None:
            return json_error(404, f"no console asset {file!r}")
        headers = {"ETag": asset.etag,
                   "Cache-Control": IMMUTABLE if "v" in request.query else REVALIDATE}
        if _not_modified(request, asset.etag):
            return view.bytes(b"", status=304, headers=headers)
        return view.bytes(asset.body, headers={
            **headers, "Content-Type": f"{asset.content_type}; charset=utf-8"})

    @app.page("/runbooks/{name}", name="runbook")
    async def runbook(view: View, request: Request, name: str) -> Response:
        match = RUNBOOK_NAME.match(name)
        if match is None:
            return json_error(400, "runbook name must be 1-64 characters of a-z, 0-9 and _ "
                              "(optionally ending in .md)")
        path = RUNBOOKS_DIR / f"{match.group(1)}.md"
        if not path.is_file():
            return json_error(404, f"no runbook {match.group(1)!r}")
        text = path.read_text(encoding="utf-8")
        return view.bytes(render_runbook(match.group(1), text, stylesheet).encode(), headers={
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": REVALIDATE})
