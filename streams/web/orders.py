"""`GET /orders/{order_id}` and `/orders/{order_id}/timeline`, from the order table.

Any worker answers any order: Faust's table routing forwards the request to the worker that
owns the order's partition (keys are partitioned by murmur2, as the producers do).
"""

from __future__ import annotations

import json
import re
from typing import Any

from faust.web import Request, Response, View

from streams.app import Pipeline
from streams.web.errors import json_error
from tables import fulfillment, order_pipeline

# Order ids are opaque, but bounded: this keeps junk (and path tricks) out of table lookups.
ORDER_ID = re.compile(r"^[A-Za-z0-9._:#@-]{1,128}$")


def _load(pipeline: Pipeline, order_id: str) -> dict[str, Any] | None:
    raw = pipeline.services["order_table"].get(order_id.encode())
    return None if raw is None else json.loads(raw)


def _bad_id(order_id: str) -> Response | None:
    if ORDER_ID.match(order_id):
        return None
    return json_error(400, "order_id must be 1-128 characters of letters, digits and ._:#@-")


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    table = pipeline.services["order_table"]

    @app.page("/orders/{order_id}", name="order")
    @app.table_route(table=table, match_info="order_id")
    async def order(view: View, request: Request, order_id: str) -> Response:
        if (bad := _bad_id(order_id)) is not None:
            return bad
        record = _load(pipeline, order_id)
        derived = None if record is None else order_pipeline.fulfillment_state(record)
        if record is None or derived is None:
            reason = ("no events for this order" if record is None else
                      "events arrived for this order but the order itself has not (orphan)")
            return json_error(404, f"order {order_id!r} not found: {reason}")
        return view.json({**derived, "open_mismatches": list(record["rec"].values()),
                          "alerts": list(order_pipeline.open_alerts(record))})

    @app.page("/orders/{order_id}/timeline", name="order_timeline")
    @app.table_route(table=table, match_info="order_id")
    async def order_timeline(view: View, request: Request, order_id: str) -> Response:
        if (bad := _bad_id(order_id)) is not None:
            return bad
        record = _load(pipeline, order_id)
        if record is None:
            return json_error(404, f"order {order_id!r} not found: no events for this order")
        return view.json({"order_id": order_id, "events": fulfillment.timeline(record["f"])})
