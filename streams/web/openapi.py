"""`GET /openapi.json`: the query API's contract (OpenAPI 3.0)."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from streams.app import Pipeline
from tables.reconciliation_rules import CATEGORIES

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_ORDER_ID = {"name": "order_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:#@-]{1,128}$"}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": "string", **schema}}


def _listing(key: str, item: str, **extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key, "count", "matched", *extra], "properties": {
        key: {"type": "array", "items": _ref(item)},
        "count": {"type": "integer", "description": "items returned (at most limit)"},
        "matched": {"type": "integer", "description": "items matching, before limit"},
        **extra}}


_MILLIS = {"type": "integer", "format": "int64", "description": "epoch milliseconds"}
_LIMIT = {"name": "limit", "in": "query", "description": "at most this many (default 100)",
          "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100}}
_CATCHING_UP = {"description": "this worker is still reading the topics' history (retry)",
                "content": {"application/json": {"schema": _ref("Error")}}}


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
        "/alerts": {"get": {
            "summary": "The latest record of every SLA alert (any worker answers for all "
                       "orders): firing first, then by severity, newest first",
            "parameters": [
                _query("state", "firing or resolved", enum=["firing", "resolved"]),
                _query("rule", "rule name, e.g. ship_by_breached"),
                {**_query("label", "label matcher, repeatable (all must match): "
                          "warehouse=wms-east; also !=, =~, !~; rule, severity and order_id "
                          "count as labels"), "explode": True,
                 "schema": {"type": "array", "items": {"type": "string"}}},
                _query("order_id", "exact order id"),
                _query("correlation_id", "exact correlation id of the triggering event"),
                _LIMIT,
            ],
            "responses": {"200": _json("alerts", _listing("alerts", "SlaAlert")),
                          "400": _ERROR, "503": _CATCHING_UP}}},
        "/mismatches": {"get": {
            "summary": "The latest record of every reconciliation mismatch (any worker "
                       "answers for all orders): open first, then newest first",
            "parameters": [
                _query("category", "a reconciliation category", enum=sorted(CATEGORIES)),
                _query("status", "open or resolved", enum=["open", "resolved"]),
                _query("provider", "settlement provider, as in SettlementEvent.provider"),
                _query("order_id", "exact order id"),
                _query("correlation_id", "exact correlation id of the detecting event"),
                _LIMIT,
            ],
            "responses": {"200": _json("mismatches", _listing(
                "mismatches", "ReconciliationMismatch", totals={
                    "type": "object", "description": "sum of difference (minor units) per "
                    "currency, then per category, over every match",
                    "additionalProperties": {"type": "object",
                                             "additionalProperties": {"type": "integer"}}})),
                "400": _ERROR, "503": _CATCHING_UP}}},
        "/silences": {
            "get": {"summary": "Silences (wall-clock): active, pending, expired or all",
                    "parameters": [_query("state", "default active",
                                          enum=["active", "pending", "expired", "all"])],
                    "responses": {"200": _json("silences", {
                        "type": "object", "required": ["silences", "count"],
                        "properties": {"silences": {"type": "array", "items": _ref("Silence")},
                                       "count": {"type": "integer"}}}),
                        "400": _ERROR, "503": _CATCHING_UP}},
            "post": {"summary": "Mute matching alerts for a while",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("NewSilence")}}},
                     "responses": {"201": _json("the silence", _ref("Silence")),
                                   "400": _ERROR, "503": _ERROR}}},
        "/silences/{silence_id}": {"delete": {
            "summary": "Expire a silence now (its firing alerts page again)",
            "parameters": [{"name": "silence_id", "in": "path", "required": True,
                            "description": "id, or a unique prefix of at least 6 characters",
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{6,64}$"}}],
            "responses": {"200": _json("the expired silence", _ref("Silence")),
                          "400": _ERROR, "404": _ERROR, "503": _ERROR}}},
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
    "components": {"schemas": {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["status", "message"],
                                     "properties": {"status": {"type": "integer"},
                                                    "message": {"type": "string"}}}}},
        "SlaAlert": {
            "type": "object", "description": "schemas/SlaAlert.avsc, plus silenced_by",
            "required": ["fingerprint", "rule", "severity", "state", "starts_at", "labels",
                         "silenced_by"],
            "properties": {
                "fingerprint": {"type": "string"}, "rule": {"type": "string"},
                "severity": {"type": "string"}, "state": {"type": "string"},
                "starts_at": _MILLIS, "ends_at": {**_MILLIS, "nullable": True},
                "summary": {"type": "string"}, "description": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "order_id": {"type": "string", "nullable": True},
                "correlation_id": {"type": "string", "nullable": True},
                "runbook_url": {"type": "string"},
                "silenced_by": {"type": "string", "nullable": True,
                                "description": "id of the active silence muting it"}}},
        "ReconciliationMismatch": {
            "type": "object", "description": "schemas/ReconciliationMismatch.avsc",
            "required": ["mismatch_id", "category", "status", "difference", "currency"],
            "properties": {
                "mismatch_id": {"type": "string"},
                "order_id": {"type": "string", "nullable": True},
                "category": {"type": "string"}, "status": {"type": "string"},
                "expected": {"type": "integer"}, "actual": {"type": "integer"},
                "difference": {"type": "integer", "description": "actual - expected, minor "
                               "units"},
                "currency": {"type": "string"},
                "provider": {"type": "string", "nullable": True},
                "settlement_ids": {"type": "array", "items": {"type": "string"}},
                "correlation_id": {"type": "string"},
                "detected_at": _MILLIS, "resolved_at": {**_MILLIS, "nullable": True}}},
        "Matcher": {"type": "object", "required": ["label", "op", "value"], "properties": {
            "label": {"type": "string"}, "op": {"type": "string",
                                                "enum": ["=", "!=", "=~", "!~"]},
            "value": {"type": "string"}}},
        "Silence": {
            "type": "object",
            "required": ["silence_id", "matchers", "starts_at", "ends_at", "state"],
            "properties": {
                "silence_id": {"type": "string"},
                "matchers": {"type": "array", "items": _ref("Matcher")},
                "starts_at": _MILLIS, "ends_at": _MILLIS,
                "created_by": {"type": "string"}, "comment": {"type": "string"},
                "state": {"type": "string", "enum": ["active", "pending", "expired"]}}},
        "NewSilence": {
            "type": "object", "required": ["matchers", "comment"],
            "description": "give duration or ends_at",
            "properties": {
                "matchers": {"type": "array", "minItems": 1, "items": {"oneOf": [
                    {"type": "string", "example": "warehouse=wms-east"},
                    _ref("Matcher")]}},
                "duration": {"type": "string", "example": "2h"},
                "ends_at": _MILLIS,
                "starts_at": {**_MILLIS, "description": "default now"},
                "created_by": {"type": "string"},
                "comment": {"type": "string", "description": "why; required"}}},
    }},
}


def register(pipeline: Pipeline) -> None:
    @pipeline.app.page("/openapi.json", name="openapi")
    async def openapi(view: View, request: Request) -> Response:
        return view.json(SPEC)
