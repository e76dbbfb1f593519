"""`GET /healthz` (the process serves) and `GET /readyz` (tables recovered, consuming)."""

from __future__ import annotations

from faust.web import Request, Response, View

from streams.app import Pipeline


def is_ready(pipeline: Pipeline) -> bool:
    app = pipeline.app
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set() and not recovery.in_recovery
                and not app.rebalancing)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    worker_id = pipeline.settings.worker_id

    @app.page("/healthz", name="healthz")
    async def healthz(view: View, request: Request) -> Response:
        return view.json({"status": "ok", "worker_id": worker_id})

    @app.page("/readyz", name="readyz")
    async def readyz(view: View, request: Request) -> Response:
        ready = is_ready(pipeline)
        body = {"ready": ready, "worker_id": worker_id,
                "recovering": bool(app.tables.recovery.in_recovery),
                "rebalancing": bool(app.rebalancing)}
        return view.json(body, status=200 if ready else 503)
