"""`GET /alerts?state=&rule=&label=&order_id=&correlation_id=&limit=`: the latest record of
every SLA alert, from the worker's projection (any worker answers for all orders), each with
`silenced_by`: the id of the active silence muting it, or null."""

from __future__ import annotations

import asyncio

from faust.web import Request, Response, View

from streams.alerting.silences import now_ms
from streams.app import Pipeline
from streams.projection_queries import BadQuery, list_alerts, parse_alert_query
from streams.web.errors import json_error
from streams.web.projected import catching_up, projection_of


def register(pipeline: Pipeline) -> None:
    projection = projection_of(pipeline)

    @pipeline.app.page("/alerts", name="alerts")
    async def alerts(view: View, request: Request) -> Response:
        if (busy := catching_up(projection)) is not None:
            return busy
        try:
            query = parse_alert_query(request.query)
        except BadQuery as exc:
            return json_error(400, str(exc))
        # Filter and sort a snapshot off the loop: thousands of alerts take a while, and the
        # agents share this loop.
        body = await asyncio.to_thread(list_alerts, list(projection.alerts.values()), query,
                                       list(projection.silences.values()), now_ms())
        return view.json(body)
