"""What the alert, mismatch and silence endpoints share: the worker's projection, and the
503 they answer while it is still reading the topics' history."""

from __future__ import annotations

from faust.web import Response

from streams.app import Pipeline
from streams.projections import Projection, attach
from streams.web.errors import json_error


def projection_of(pipeline: Pipeline) -> Projection:
    return attach(pipeline)


def catching_up(projection: Projection) -> Response | None:
    """None when the projection can answer; else a 503 saying what it still reads."""
    if projection.ready:
        return None
    return json_error(503, "catching up: this worker is still reading the alert, mismatch and "
                      "silence topics from their beginning; retry in a few seconds",
                      **projection.progress())
