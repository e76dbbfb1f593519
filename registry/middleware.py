"""What every request goes through: a request id, authentication, error rendering, metrics
and the request log.

Every response carries `X-Request-Id` (the client's, when it sent a sane one, so a producer's
id follows its request into our log). Writes and failures are logged at INFO (4xx) or
WARNING (5xx) with that id; reads only at DEBUG, since a log line per id lookup would cost
more than the lookup.

It wraps each route's handler (``guarded``) instead of being an aiohttp middleware: with any
middleware aiohttp runs its own ``_fix_request_current_app`` layer too, and the two coroutine
layers cost about 6 us of an id lookup's 60. Requests that match no route reach ``unmatched``
(a catch-all route registered last), so they too leave as Confluent-compatible JSON errors
(404, or 405 when the path exists for other methods). Stack traces go to the log only.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from functools import wraps

from aiohttp import web

from registry.context import CONTEXT
from registry.errors import MethodNotAllowed, RegistryError, RouteNotFound
from registry.responses import error_response, json_response
from registry.routes import OPEN_ROUTES, Handler

log = logging.getLogger(__name__)
UNMATCHED = "unmatched"  # the route label of requests that match no route
REQUEST_ID = "X-Request-Id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Unique per process and cheap (a counter, not a uuid per request).
_ID_PREFIX = f"{os.getpid():x}-{int(time.time()):x}"
_ids = itertools.count(1)


def request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID)
    if given is not None and _SANE_ID.match(given):
        return given
    return f"{_ID_PREFIX}-{next(_ids)}"


def guarded(handler: Handler, route: str | None = None) -> Handler:
    """`handler` behind authentication (unless it is open), with every failure rendered as a
    JSON error and the request counted under `route` (default: the matched route's path)."""
    open_route = handler in OPEN_ROUTES
    writes = bool(getattr(handler, "registry_writes", False))

    @wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CONTEXT]
        started = time.perf_counter()
        rid = request_id(request)
        response: web.StreamResponse
        try:
            if ctx.authenticator is not None and not open_route:
                user = await ctx.authenticator.authenticate(request.headers.get("Authorization"))
                ctx.authenticator.authorize(user, writes)
            response = await handler(request)
        except RegistryError as err:
            response = error_response(err)
        except web.HTTPException as exc:
            response = _http_error(exc)
        except Exception:
            log.exception("unhandled error in %s %s request_id=%s", request.method,
                          request.path, rid, extra={"request_id": rid})
            response = json_response({"error_code": 50001, "message": "Internal server error"},
                                     500)
        resource = request.match_info.route.resource
        label = route or (resource.canonical if resource is not None else UNMATCHED)
        elapsed = time.perf_counter() - started
        ctx.metrics.observe(label, request.method, response.status, elapsed)
        response.headers[REQUEST_ID] = rid
        _log_request(request, response.status, elapsed, rid)
        return response

    return guard


async def unmatched(request: web.Request) -> web.StreamResponse:
    """No route took the request: 405 if another method of the path has one, else 404."""
    own = request.match_info.route.resource
    for resource in request.app.router.resources():
        if resource is not own:
            _, allowed = await resource.resolve(request)
            if allowed:
                raise MethodNotAllowed()
    raise RouteNotFound()


def guarded_routes(routes: web.RouteTableDef) -> list[web.RouteDef]:
    """The routes with their handlers guarded, then the catch-all for everything else."""
    table: list[web.RouteDef] = []
    for route in routes:
        if not isinstance(route, web.RouteDef):
            raise TypeError(f"only handler routes can be guarded, not {route!r}")
        table.append(web.RouteDef(route.method, route.path, guarded(route.handler),
                                  route.kwargs))
    table.append(web.RouteDef("*", "/{tail:.*}", guarded(unmatched, UNMATCHED), {}))
    return table


def _log_request(request: web.Request, status: int, elapsed: float, rid: str) -> None:
    if status >= 500:
        level = logging.WARNING
    elif status >= 400 or request.method not in ("GET", "HEAD"):
        level = logging.INFO
    else:
        level = logging.DEBUG
    if log.isEnabledFor(level):
        # The id is in the text too: the registry's plain log format shows no extra fields.
        log.log(level, "%s %s -> %d in %.1f ms request_id=%s", request.method,
                request.path_qs, status, elapsed * 1000, rid,
                extra={"request_id": rid, "status": status, "remote": request.remote})


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        return error_response(RouteNotFound())
    if exc.status == 405:
        return error_response(MethodNotAllowed())
    return json_response({"error_code": exc.status, "message": exc.reason}, exc.status)
