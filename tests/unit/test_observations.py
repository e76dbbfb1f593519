"""Metric observation records (streams/observations.py): many per record, in order."""

from __future__ import annotations

import orjson
import pytest

from streams import observations as records
from tables.windows import Observation


def observation(n: int) -> Observation:
    return Observation("units_shipped", (("warehouse", f"W{n % 3}"),), 1_000 + n, 1, n)


def test_a_batch_comes_back_in_order_from_one_record() -> None:
    batch = [observation(n) for n in range(5)]
    encoded = list(records.encode_observations(batch))
    assert len(encoded) == 1
    assert records.decode_observations(encoded[0]) == batch


def test_a_large_batch_is_split_into_records_of_the_maximum(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "MAX_PER_RECORD", 2)
    batch = [observation(n) for n in range(5)]
    encoded = list(records.encode_observations(batch))
    assert [len(records.decode_observations(raw)) for raw in encoded] == [2, 2, 1]
    assert [obs for raw in encoded for obs in records.decode_observations(raw)] == batch


def test_no_observations_no_record() -> None:
    assert list(records.encode_observations([])) == []


def test_a_record_of_one_observation_from_an_older_writer_still_decodes() -> None:
    obs = observation(7)
    older = orjson.dumps([obs.name, obs.labels, obs.event_ms, obs.count, obs.value])
    assert records.decode_observations(older) == [obs]


def test_the_largest_record_stays_far_below_the_broker_message_limit() -> None:
    batch = [Observation("delivery_latency_ms", (("carrier", "x" * 40), ("zone", "y" * 40)),
                         1_800_000_000_000 + n, 1, 10**9) for n in range(records.MAX_PER_RECORD)]
    raw, = records.encode_observations(batch)
    assert len(raw) < 256 * 1024
