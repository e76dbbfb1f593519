"""Silences over HTTP, for the console's "silence" button and for scripts.

`GET /silences?state=active|pending|expired|all` lists them from the worker's projection;
`POST /silences` creates one (body: see `streams.alerting.silence_request`) and answers 201
with it; `DELETE /silences/{silence_id}` expires one now. Writes go to the compacted silences
topic through `streams.alerting.silences`, exactly as `fstreams alerts silence|expire` do,
so the CLI, every worker and every deliverer agree.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict
from typing import Any

from confluent_kafka import KafkaException
from faust.web import Request, Response, View

from streams.alerting.silence_request import parse_silence_request
from streams.alerting.silences import (
    SilenceError,
    SilenceNotFound,
    SilenceWriteError,
    create_silence,
    expire_silence,
    now_ms,
    silence_state,
)
from streams.app import Pipeline
from streams.web.errors import json_error
from streams.web.projected import catching_up, projection_of
from tables.alerts import Silence

STATES = ("active", "pending", "expired", "all")
SILENCE_ID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")  # an id, or a unique prefix of one
# The topic did not answer: the request was fine, the broker was not.
_UNAVAILABLE = (SilenceWriteError, KafkaException, TimeoutError)


def silence_json(silence: Silence, now: int) -> dict[str, Any]:
    return {**asdict(silence), "state": silence_state(silence, now)}


def _unavailable(exc: Exception) -> Response:
    return json_error(503, f"the silences topic is not reachable: {exc}")


def register(pipeline: Pipeline) -> None:
    app, settings = pipeline.app, pipeline.settings
    projection = projection_of(pipeline)

    @app.page("/silences", name="silences")
    class Silences(View):
        async def get(self, request: Request) -> Response:
            if (busy := catching_up(projection)) is not None:
                return busy
            unknown = sorted(set(request.query) - {"state"})
            state = request.query.get("state") or "active"
            if unknown or state not in STATES:
                return json_error(400, f"the only parameter is state, one of "
                                  f"{', '.join(STATES)} (default active)")
            now = now_ms()
            found = sorted((s for s in projection.silences.values()
                            if state == "all" or silence_state(s, now) == state),
                           key=lambda s: (s.ends_at, s.silence_id))
            return self.json({"silences": [silence_json(s, now) for s in found],
                              "count": len(found)})

        async def post(self, request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return json_error(400, "the body must be a JSON object: matchers, duration "
                                  "(or ends_at) and comment")
            now = now_ms()
            try:
                wanted = parse_silence_request(body, now)
                silence = await asyncio.to_thread(
                    create_silence, settings, wanted.matchers, wanted.duration_ms,
                    comment=wanted.comment, created_by=wanted.created_by,
                    starts_at=wanted.starts_at)
            except _UNAVAILABLE as exc:
                return _unavailable(exc)
            except SilenceError as exc:
                return json_error(400, str(exc))
            projection.silence_added(silence)
            return self.json(silence_json(silence, now), status=201)

    @app.page("/silences/{silence_id}", name="silence")
    class OneSilence(View):
        async def delete(self, request: Request, silence_id: str) -> Response:
            if not SILENCE_ID.match(silence_id):
                return json_error(400, "silence_id must be 6-64 letters, digits, _ or - "
                                  "(an id or a unique prefix of one)")
            try:
                silence = await asyncio.to_thread(expire_silence, settings, silence_id)
            except SilenceNotFound as exc:
                return json_error(404, str(exc))
            except _UNAVAILABLE as exc:
                return _unavailable(exc)
            projection.silence_expired(silence.silence_id)
            return self.json({**silence_json(silence, now_ms()), "state": "expired"})
