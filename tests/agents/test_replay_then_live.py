"""The bulk replay path hands over to the live path: replay-then-live == all-live == oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.replay import Replayer, ReplayPlan, ReplayRefused
from streams.settings import Settings
from streams.topics import ORDER_STATE_TABLE, TopicNames, changelog_topic
from tables import fulfillment
from tests.agents.conftest import StartWorker
from tests.agents.test_fulfillment_pipeline import emitted_states, pure_fold
from tests.kafka_helpers import read_topic, wait_for_zero_lag

pytestmark = pytest.mark.broker
# Fields of the fold state that depend on arrival order by design (how many versions were
# emitted on the way, which event arrived last); everything else must be identical.
ARRIVAL_DEPENDENT = ("v", "last")


def table_state(settings: Settings) -> dict[str, dict[str, Any]]:
    """The order table as its changelog holds it (last value per key)."""
    topic = changelog_topic(settings.app_id, ORDER_STATE_TABLE)
    state: dict[str, dict[str, Any]] = {}
    for _, _, key, value in read_topic(settings.bootstrap_servers, topic):
        assert key is not None
        if value is None:
            state.pop(key.decode(), None)
        else:
            doc = json.loads(value)
            state[key.decode()] = {k: v for k, v in doc.items() if k not in ARRIVAL_DEPENDENT}
    return state


def final_views(settings: Settings) -> dict[str, dict[str, Any]]:
    names = TopicNames.with_prefix(settings.topic_prefix)
    return {order: fulfillment.canonical_view(states[-1])
            for order, states in emitted_states(settings, names).items()}


def test_replay_then_live_equals_all_live_and_the_oracle(
    app_settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    generated = generate(GeneratorConfig(orders=80, seed=8))
    cut = len(generated.events) * 3 // 5
    first, rest = generated.events[:cut], generated.events[cut:]

    def produce(settings: Settings, events: list[Any]) -> None:
        produce_to_kafka(events, bootstrap=settings.bootstrap_servers,
                         registry_url=settings.registry_url, topic_prefix=settings.topic_prefix,
                         partitions=settings.partitions)

    # Run A: everything through the live worker.
    live = app_settings
    produce(live, generated.events)
    worker_a = start_worker("live-worker")

    # Run B: the first part through the bulk replay path, the rest live afterwards.
    replayed = live.model_copy(update={
        "topic_prefix": f"b-{live.topic_prefix}", "app_id": f"b-{live.app_id}",
        "data_dir": tmp_path / "b"})
    produce(replayed, first)
    replayer = Replayer(replayed)
    try:
        summary = replayer.run(ReplayPlan(start="beginning", rebuild=True))
    finally:
        replayer.close()
    assert summary.events == len(first)
    assert summary.orders_written > 0
    produce(replayed, rest)
    worker_b = start_worker("replay-worker", FSTREAMS_TOPIC_PREFIX=replayed.topic_prefix,
                            FSTREAMS_APP_ID=replayed.app_id,
                            FSTREAMS_DATA_DIR=str(replayed.data_dir))

    names_a = TopicNames.with_prefix(live.topic_prefix)
    names_b = TopicNames.with_prefix(replayed.topic_prefix)
    wait_for_zero_lag(live.bootstrap_servers, live.app_id, names_a.inputs, workers=[worker_a])
    wait_for_zero_lag(replayed.bootstrap_servers, replayed.app_id, names_b.inputs,
                      workers=[worker_b])

    oracle = {k: fulfillment.canonical_view(v) for k, v in pure_fold(generated.events).items()}
    assert final_views(replayed) == final_views(live) == oracle

    # The table the live worker continued from holds what an all-live run holds. The live
    # worker writes its changelog as it goes; wait until it has committed (lag zero above),
    # then compare the changelog's latest values.
    assert table_state(replayed) == table_state(live)

    # While a live worker is in the group, replay refuses to run.
    assert worker_b.running
    with pytest.raises(ReplayRefused):
        Replayer(replayed).run(ReplayPlan())
