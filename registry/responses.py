"""HTTP plumbing shared by the handlers: content types, JSON bodies in and out."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from registry.errors import InvalidRequestBody, RegistryError, UnsupportedMediaType

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_BODY_TYPES = frozenset({
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    # Clients that send no content type at all get the benefit of the doubt.
    "application/octet-stream",
    "",
})


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def raw_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": CONTENT_TYPE})


def json_response(body: Any, status: int = 200) -> web.Response:
    return raw_response(json_bytes(body), status)


def error_response(err: RegistryError) -> web.Response:
    response = json_response(err.body(), err.status)
    response.headers.update(err.headers)
    return response


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; malformed JSON or an unknown content type is a 4xx, never a 500."""
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in ACCEPTED_BODY_TYPES:
        raise UnsupportedMediaType(f"HTTP 415 Unsupported Media Type: {content_type}")
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequestBody("the request body is empty; a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestBody(f"malformed JSON body: {exc}") from exc
    except RecursionError as exc:
        raise InvalidRequestBody("malformed JSON body: nested too deeply") from exc


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").strip().lower() == "true"
