"""aiohttp handlers for the Confluent-compatible REST API.

Handlers only translate HTTP to ``RegistryService`` calls and back. Handlers that change the
registry are marked with ``@writes``: on an instance that is not the elected writer they forward
the request to the writer instead of running it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from registry.context import CONTEXT, RegistryContext
from registry.payloads import field_of, parse_version, schema_submission
from registry.resolver import SUPPORTED_TYPES
from registry.responses import flag, json_response, raw_response, read_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()


def writes(handler: Handler) -> Handler:
    @wraps(handler)
    async def run_on_writer(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CONTEXT]
        if not ctx.election.is_writer:
            forwarded = await ctx.forwarder.forward(request)
            if forwarded is not None:
                if forwarded.status < 300:
                    # Read-your-writes on the instance the client talks to: the writer has
                    # applied the change, so it is in the log; catch up before answering so a
                    # read that follows this response here sees it.
                    await ctx.store.sync_to_end()
                return forwarded
        return await handler(request)

    run_on_writer.registry_writes = True  # type: ignore[attr-defined]
    return run_on_writer


def _ctx(request: web.Request) -> RegistryContext:
    return request.app[CONTEXT]


def _subject(request: web.Request) -> str:
    return request.match_info["subject"]


# -- root and schemas ---------------------------------------------------------------------------
@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return json_response({})


@routes.get("/schemas/types")
async def schema_types(request: web.Request) -> web.Response:
    return json_response(list(SUPPORTED_TYPES))


@routes.get(r"/schemas/ids/{id:\d{1,18}}")
async def schema_by_id(request: web.Request) -> web.Response:
    return raw_response(_ctx(request).service.schema_response(int(request.match_info["id"])))


@routes.get(r"/schemas/ids/{id:\d{1,18}}/schema")
async def schema_text_by_id(request: web.Request) -> web.Response:
    text = _ctx(request).service.schema_text(int(request.match_info["id"]))
    return raw_response(text.encode())


@routes.get(r"/schemas/ids/{id:\d{1,18}}/versions")
async def schema_versions_by_id(request: web.Request) -> web.Response:
    service = _ctx(request).service
    found = service.schema_versions(int(request.match_info["id"]), flag(request, "deleted"))
    return json_response(found)


@routes.get("/schemas")
async def list_schemas(request: web.Request) -> web.Response:
    service = _ctx(request).service
    deleted, latest_only = flag(request, "deleted"), flag(request, "latestOnly")
    out = []
    for subject in service.subjects(deleted, request.query.get("subjectPrefix", "")):
        entries = service.state.versions(subject, include_deleted=deleted)
        for entry in entries[-1:] if latest_only else entries:
            out.append(service.version_response(entry))
    return json_response(out)


# -- subjects -----------------------------------------------------------------------------------
@routes.get("/subjects")
async def list_subjects(request: web.Request) -> web.Response:
    service = _ctx(request).service
    prefix = request.query.get("subjectPrefix", "")
    return json_response(service.subjects(flag(request, "deleted"), prefix))


@routes.get("/subjects/{subject}/versions")
async def list_versions(request: web.Request) -> web.Response:
    found = _ctx(request).service.versions(_subject(request), flag(request, "deleted"))
    return json_response(found)


@routes.get("/subjects/{subject}/versions/{version}")
async def get_version(request: web.Request) -> web.Response:
    service = _ctx(request).service
    version = parse_version(request.match_info["version"])
    entry = service.version_entry(_subject(request), version, flag(request, "deleted"))
    return json_response(service.version_response(entry))


@routes.get("/subjects/{subject}/versions/{version}/schema")
async def get_version_schema(request: web.Request) -> web.Response:
    service = _ctx(request).service
    version = parse_version(request.match_info["version"])
    entry = service.version_entry(_subject(request), version, flag(request, "deleted"))
    return raw_response(service.schema_text(entry.schema_id).encode())


@routes.get("/subjects/{subject}/versions/{version}/referencedby")
async def referenced_by(request: web.Request) -> web.Response:
    version = parse_version(request.match_info["version"])
    return json_response(_ctx(request).service.referenced_by(_subject(request), version))


@routes.post("/subjects/{subject}/versions")
@writes
async def register(request: web.Request) -> web.Response:
    submission = schema_submission(await read_json(request))
    schema_id = await _ctx(request).service.register(_subject(request), submission)
    return json_response({"id": schema_id})


@routes.post("/subjects/{subject}")
async def lookup(request: web.Request) -> web.Response:
    submission = schema_submission(await read_json(request))
    found = _ctx(request).service.lookup(_subject(request), submission, flag(request, "deleted"))
    return json_response(found)


@routes.delete("/subjects/{subject}")
@writes
async def delete_subject(request: web.Request) -> web.Response:
    service = _ctx(request).service
    deleted = await service.delete_subject(_subject(request), flag(request, "permanent"))
    return json_response(deleted)


@routes.delete("/subjects/{subject}/versions/{version}")
@writes
async def delete_version(request: web.Request) -> web.Response:
    version = parse_version(request.match_info["version"])
    service = _ctx(request).service
    deleted = await service.delete_version(_subject(request), version, flag(request, "permanent"))
    return json_response(deleted)


# -- compatibility ------------------------------------------------------------------------------
async def _compatibility(request: web.Request, version: int | None) -> web.Response:
    submission = schema_submission(await read_json(request))
    service = _ctx(request).service
    messages = service.check(_subject(request), version, submission)
    body: dict[str, Any] = {"is_compatible": not messages}
    if flag(request, "verbose"):
        body["messages"] = messages
    return json_response(body)


@routes.post("/compatibility/subjects/{subject}/versions/{version}")
async def compatibility_with_version(request: web.Request) -> web.Response:
    return await _compatibility(request, parse_version(request.match_info["version"]))


@routes.post("/compatibility/subjects/{subject}/versions")
async def compatibility_with_all(request: web.Request) -> web.Response:
    return await _compatibility(request, None)


# -- config and mode ----------------------------------------------------------------------------
def _optional_subject(request: web.Request) -> str | None:
    return request.match_info.get("subject")


@routes.get("/config")
@routes.get("/config/{subject}")
async def get_config(request: web.Request) -> web.Response:
    service = _ctx(request).service
    level = service.get_config(_optional_subject(request), flag(request, "defaultToGlobal"))
    return json_response({"compatibilityLevel": level})


@routes.put("/config")
@routes.put("/config/{subject}")
@writes
async def put_config(request: web.Request) -> web.Response:
    raw = field_of(await read_json(request), "compatibility")
    level = await _ctx(request).service.set_config(_optional_subject(request), raw)
    return json_response({"compatibility": level})


@routes.delete("/config")
@routes.delete("/config/{subject}")
@writes
async def delete_config(request: web.Request) -> web.Response:
    previous = await _ctx(request).service.delete_config(_optional_subject(request))
    return json_response({"compatibilityLevel": previous})


@routes.get("/mode")
@routes.get("/mode/{subject}")
async def get_mode(request: web.Request) -> web.Response:
    service = _ctx(request).service
    mode = service.get_mode(_optional_subject(request), flag(request, "defaultToGlobal"))
    return json_response({"mode": mode})


@routes.put("/mode")
@routes.put("/mode/{subject}")
@writes
async def put_mode(request: web.Request) -> web.Response:
    raw = field_of(await read_json(request), "mode")
    service = _ctx(request).service
    mode = await service.set_mode(_optional_subject(request), raw, flag(request, "force"))
    return json_response({"mode": mode})


@routes.delete("/mode")
@routes.delete("/mode/{subject}")
@writes
async def delete_mode(request: web.Request) -> web.Response:
    previous = await _ctx(request).service.delete_mode(_optional_subject(request))
    return json_response({"mode": previous})


# -- operations ---------------------------------------------------------------------------------
@routes.get("/_ready")
async def ready(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    body = {
        "ready": ctx.store.ready,
        "writer": ctx.election.writer_url,
        "is_writer": ctx.election.is_writer,
        "offset": ctx.store.position,
    }
    return json_response(body, 200 if ctx.store.ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    m = _ctx(request).metrics
    return web.Response(body=m.exposition(), headers={"Content-Type": m.content_type})


OPEN_ROUTES = frozenset({ready, metrics})
