"""`GET /openapi.json`: the query API's contract (OpenAPI 3.0)."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from streams.app import Pipeline

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_ORDER_ID = {"name": "order_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:#@-]{1,128}$"}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema}}}


SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "fulfillment-streams query API", "version": "1"},
    "paths": {
        "/orders/{order_id}": {"get": {
            "summary": "The canonical fulfillment state of an order",
            "parameters": [_ORDER_ID],
            "responses": {"200": _json("state", {"type": "object"}), "400": _ERROR,
                          "404": _ERROR}}},
        "/orders/{order_id}/timeline": {"get": {
            "summary": "The distinct events applied to an order, with their effect",
            "parameters": [_ORDER_ID],
            "responses": {"200": _json("timeline", {
                "type": "object", "required": ["order_id", "events"],
                "properties": {"order_id": {"type": "string"},
                               "events": {"type": "array", "items": {"type": "object"}}}}),
                "400": _ERROR, "404": _ERROR}}},
        "/metrics/windows": {"get": {
            "summary": "Closed windows of the analysts' metrics (fulfillment-metrics)",
            "parameters": [
                {"name": "name", "in": "query", "schema": {"type": "string"}},
                {"name": "group", "in": "query", "schema": {"type": "string"}},
                {"name": "from", "in": "query", "schema": {"type": "integer"},
                 "description": "window start at or after, epoch millis"},
                {"name": "to", "in": "query", "schema": {"type": "integer"},
                 "description": "window end at or before, epoch millis"},
            ],
            "responses": {"200": _json("windows", {"type": "object"}), "400": _ERROR}}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {
            "200": _json("alive", {"type": "object"})}}},
        "/readyz": {"get": {"summary": "Readiness: tables recovered", "responses": {
            "200": _json("ready", {"type": "object"}),
            "503": _json("not ready", {"type": "object"})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
    "components": {"schemas": {"Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["status", "message"],
                                 "properties": {"status": {"type": "integer"},
                                                "message": {"type": "string"}}}}}}},
}


def register(pipeline: Pipeline) -> None:
    @pipeline.app.page("/openapi.json", name="openapi")
    async def openapi(view: View, request: Request) -> Response:
        return view.json(SPEC)
