"""One middleware for every request: authentication, error rendering and metrics.

A single layer (rather than three) keeps the per-request overhead of the hot read path small.
Every failure leaves as a Confluent-compatible JSON error; stack traces go to the log only.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from registry.context import CONTEXT
from registry.errors import MethodNotAllowed, RegistryError, RouteNotFound
from registry.responses import error_response, json_response
from registry.routes import OPEN_ROUTES, Handler

log = logging.getLogger(__name__)


@web.middleware
async def registry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    started = time.perf_counter()
    match = request.match_info
    resource = match.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    response: web.StreamResponse
    try:
        if ctx.authenticator is not None and match.handler not in OPEN_ROUTES:
            user = await ctx.authenticator.authenticate(request.headers.get("Authorization"))
            ctx.authenticator.authorize(user, getattr(match.handler, "registry_writes", False))
        response = await handler(request)
    except RegistryError as err:
        response = error_response(err)
    except web.HTTPException as exc:
        response = _http_error(exc)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = json_response({"error_code": 50001, "message": "Internal server error"}, 500)
    ctx.metrics.observe(route, request.method, response.status, time.perf_counter() - started)
    return response


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        return error_response(RouteNotFound())
    if exc.status == 405:
        return error_response(MethodNotAllowed())
    return json_response({"error_code": exc.status, "message": exc.reason}, exc.status)
