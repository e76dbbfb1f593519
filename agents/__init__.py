"""Thin Faust agents around the pure domain in `tables/`. Each module has `register(pipeline)`."""

from __future__ import annotations

from streams.app import Pipeline


def register_all(pipeline: Pipeline) -> None:
    from agents import fulfillment, metrics

    fulfillment.register(pipeline)
    metrics.register(pipeline)
