"""JSON errors for every HTTP failure: a 4xx says what was wrong, a 5xx never leaks a trace."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, **extra: object) -> web.Response:
    body = {"error": {"status": status, "message": message, **extra}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason, request_id=request_id)
    except Exception:
        log.exception("request failed", extra={"path": request.path, "request_id": request_id})
        return json_error(500, "internal error; the worker log has the details",
                          request_id=request_id)
    response.headers["X-Request-Id"] = request_id
    return response
