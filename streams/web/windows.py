"""`GET /metrics/windows?name=&group=&from=&to=`: the windowed metrics emitted lately.

Answers from the ring of recently emitted WindowedMetric records that the metrics agent keeps
in memory (`agents/metrics.py`), newest last. The windows table has one partition, so its
owner holds the ring; table routing forwards the request there from any worker. Older windows
are on the `fulfillment-metrics` topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from faust.web import Request, Response, View

from streams.app import Pipeline
from streams.web.errors import json_error
from tables.metrics_rules import METRICS


class BadQuery(ValueError):
    """A query parameter the endpoint cannot use; the message says which and why."""


def parse_query(query: Mapping[str, str]) -> dict[str, Any]:
    """name and group (exact match), from and to (epoch ms: window_start >= from, window_end
    <= to); every one optional."""
    name = query.get("name") or None
    if name is not None and name not in METRICS:
        raise BadQuery(f"unknown metric name {name!r}; known: {', '.join(sorted(METRICS))}")
    bounds: dict[str, int | None] = {}
    for param in ("from", "to"):
        raw = query.get(param)
        if raw is None or raw == "":
            bounds[param] = None
            continue
        try:
            bounds[param] = int(raw)
        except ValueError:
            raise BadQuery(f"{param} must be epoch milliseconds, got {raw!r}") from None
    start, end = bounds["from"], bounds["to"]
    if start is not None and end is not None and start > end:
        raise BadQuery(f"from ({start}) is after to ({end})")
    return {"name": name, "group": query.get("group"), "from": start, "to": end}


def select(records: Iterable[Mapping[str, Any]], q: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in records
            if (q["name"] is None or r["name"] == q["name"])
            and (q["group"] is None or r["group_key"] == q["group"])
            and (q["from"] is None or r["window_start"] >= q["from"])
            and (q["to"] is None or r["window_end"] <= q["to"])]


def register(pipeline: Pipeline) -> None:
    table = pipeline.services.get("metric_windows_table")
    if table is None:  # the metrics agent is not registered in this worker
        return

    @pipeline.app.page("/metrics/windows", name="metric_windows")
    @pipeline.app.table_route(table=table, exact_key="windows")
    async def metric_windows(view: View, request: Request) -> Response:
        try:
            q = parse_query(request.query)
        except BadQuery as exc:
            return json_error(400, str(exc))
        found = select(pipeline.services.get("recent_metric_windows", ()), q)
        return view.json({"windows": found, "count": len(found)})
