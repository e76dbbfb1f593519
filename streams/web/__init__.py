"""The worker's HTTP surface (Faust's aiohttp web server): query API, health, metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # streams.app imports streams.web.errors; keep this package import-light
    from streams.app import Pipeline


def register_web(pipeline: Pipeline) -> None:
    from streams.web import (
        alerts,
        console,
        health,
        metrics,
        mismatches,
        openapi,
        orders,
        overview,
        silences,
        windows,
    )

    orders.register(pipeline)
    health.register(pipeline)
    metrics.register(pipeline)
    overview.register(pipeline)
    openapi.register(pipeline)
    windows.register(pipeline)
    console.register(pipeline)
    alerts.register(pipeline)
    mismatches.register(pipeline)
    silences.register(pipeline)
