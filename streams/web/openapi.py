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


_CENSUS = {"type": "object", "required": ["orders", "firing_alerts"], "properties": {
    "orders": {"type": "object", "additionalProperties": {"type": "integer"},
               "description": "orders by fulfillment_status"},
    "firing_alerts": {"type": "integer"}}}
_OVERVIEW = {
    "type": "object",
    "required": ["orders_by_status", "orders_total", "events_per_second", "consumer_lag",
                 "dead_letters", "firing_alerts", "workers", "partitions_missing", "complete",
                 "as_of"],
    "properties": {
        "orders_by_status": {"type": "object", "additionalProperties": {"type": "integer"},
                             "description": "orders of every partition by fulfillment_status "
                             "(orphans, whose order has not arrived, are not counted)"},
        "orders_total": {"type": "integer"},
        "events_per_second": {"type": "number",
                              "description": "input events consumed per second, all workers, "
                              "over the last ~10 s"},
        "consumer_lag": {"type": "integer", "description": "input records not yet processed"},
        "dead_letters": {"type": "integer",
                         "description": "records the dead-letter topic holds"},
        "firing_alerts": {"type": "integer", "description": "SLA alerts firing now"},
        "workers": {"type": "array", "items": {
            "type": "object", "required": ["id", "url", "partitions"], "properties": {
                "id": {"type": "string", "nullable": True,
                       "description": "worker_id (null if it did not answer)"},
                "url": {"type": "string"},
                "partitions": {"type": "array", "items": {"type": "integer"}},
                "ready": {"type": "boolean"},
                "events_per_second": {"type": "number"},
                "consumer_lag": {"type": "integer"},
                "error": {"type": "string", "description": "why it did not answer"}}}},
        "partitions_missing": {"type": "array", "items": {"type": "integer"},
                               "description": "partitions no worker reported (rebalancing, "
                               "a worker not answering): counts leave them out"},
        "complete": {"type": "boolean", "description": "no partition is missing"},
        "as_of": {"type": "integer", "format": "int64", "description": "epoch milliseconds"}}}
_OVERVIEW_LOCAL = {
    "type": "object",
    "required": ["worker_id", "url", "partitions", "census", "events_consumed",
                 "events_per_second", "consumer_lag", "dead_lettered", "ready", "as_of"],
    "properties": {
        "worker_id": {"type": "string"}, "url": {"type": "string"},
        "partitions": {"type": "array", "items": {"type": "integer"}},
        "census": {"type": "object", "description": "partition -> its census (null: not "
                   "known here yet)", "additionalProperties": {**_CENSUS, "nullable": True}},
        "events_consumed": {"type": "integer"}, "events_per_second": {"type": "number"},
        "consumer_lag": {"type": "integer"},
        "dead_lettered": {"type": "integer", "description": "by this process since start"},
        "ready": {"type": "boolean"},
        "as_of": {"type": "integer", "format": "int64"}}}


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
        "/overview": {"get": {
            "summary": "The whole cluster at a glance (any worker answers): orders by "
                       "fulfillment status, events/s, lag, dead letters, firing alerts",
            "responses": {"200": _json("overview", _OVERVIEW)}}},
        "/overview/local": {"get": {
            "summary": "This worker's part of the overview (what /overview asks each peer)",
            "responses": {"200": _json("local part", _OVERVIEW_LOCAL)}}},
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
