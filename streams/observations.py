"""The metric observations topic: where the fulfillment fold (live and replay) hands each
emitted state's observations (`tables.metrics_rules`) to the windowed-metrics agent.

One partition, JSON values: a window (say, the exception rate of warehouse W1) gathers orders
of every input partition, so one partition is the one place where a window is complete and
one stream clock closes it. Observations are few (a handful per order) and small.
"""

from __future__ import annotations

import orjson

from tables.windows import Observation

PARTITION = 0


def observations_topic(app_id: str) -> str:
    return f"{app_id}-metric-observations"


def encode_observation(obs: Observation) -> bytes:
    return orjson.dumps([obs.name, obs.labels, obs.event_ms, obs.count, obs.value])


def decode_observation(raw: bytes) -> Observation:
    name, labels, event_ms, count, value = orjson.loads(raw)
    return Observation(name, tuple((k, v) for k, v in labels), event_ms, count, value)
