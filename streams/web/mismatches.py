"""`GET /mismatches?category=&status=&provider=&order_id=&correlation_id=&limit=`: the latest
record of every reconciliation mismatch, from the worker's projection (any worker answers for
all orders), with the summed differences per currency and category."""

from __future__ import annotations

import asyncio

from faust.web import Request, Response, View

from streams.app import Pipeline
from streams.projection_queries import BadQuery, list_mismatches, parse_mismatch_query
from streams.web.errors import json_error
from streams.web.projected import catching_up, projection_of


def register(pipeline: Pipeline) -> None:
    projection = projection_of(pipeline)

    @pipeline.app.page("/mismatches", name="mismatches")
    async def mismatches(view: View, request: Request) -> Response:
        if (busy := catching_up(projection)) is not None:
            return busy
        try:
            query = parse_mismatch_query(request.query)
        except BadQuery as exc:
            return json_error(400, str(exc))
        # A snapshot, filtered off the loop the agents share (see alerts.py).
        body = await asyncio.to_thread(list_mismatches, list(projection.mismatches.values()),
                                       query)
        return view.json(body)
