"""The bulk replay path hands over to the live path: replay-then-live == all-live == oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.replay import Replayer, ReplayPlan, ReplayRefused
from streams.settings import Settings
from streams.topics import TopicNames
from tables import fulfillment
from tests.agents.conftest import StartWorker
from tests.agents.oracle import live_records, oracle_records, verdicts
from tests.agents.test_fulfillment_pipeline import emitted_states
from tests.kafka_helpers import committed_offsets, end_offsets, wait_for_zero_lag
from tests.reliability.support import input_progress, wait_for

pytestmark = pytest.mark.broker
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
    # In two job processes (the parallel path; tests/agents/test_replay_jobs.py compares it
    # with the in-process one).
    produce(replayed, first)
    names_b = TopicNames.with_prefix(replayed.topic_prefix)
    # Delivered means acknowledged; the end offsets a metadata request reports (what the
    # replay reads up to) can trail the acknowledgement briefly on a loaded broker.
    wait_for("every produced record in the end offsets",
             lambda: input_progress(replayed)[1] == len(first), timeout=30)
    replayer = Replayer(replayed, jobs=2)
    try:
        summary = replayer.run(ReplayPlan(start="beginning", rebuild=True))
    finally:
        replayer.close()
    assert summary.jobs == 2
    assert summary.events == len(first)
    assert summary.orders_written > 0
    # Committed once, for every job's partitions, at the end offsets replayed to.
    assert committed_offsets(replayed.bootstrap_servers, replayed.app_id) == {
        tp: end for tp, end in end_offsets(replayed.bootstrap_servers, names_b.inputs).items()
        if end > 0}
    produce(replayed, rest)
    worker_b = start_worker("replay-worker", FSTREAMS_TOPIC_PREFIX=replayed.topic_prefix,
                            FSTREAMS_APP_ID=replayed.app_id,
                            FSTREAMS_DATA_DIR=str(replayed.data_dir))

    names_a = TopicNames.with_prefix(live.topic_prefix)
    wait_for_zero_lag(live.bootstrap_servers, live.app_id, names_a.inputs, workers=[worker_a])
    wait_for_zero_lag(replayed.bootstrap_servers, replayed.app_id, names_b.inputs,
                      workers=[worker_b])

    # Same table (canonical states, reconciled verdicts, open mismatches, firing alerts) as
    # an all-live run and as the pure pipeline over the same input.
    assert verdicts(live_records(replayed)) == verdicts(live_records(live)) == verdicts(
        oracle_records(live))
    # And the emitted streams end in the same canonical states.
    views = {}
    for settings in (live, replayed):
        names = TopicNames.with_prefix(settings.topic_prefix)
        views[settings.app_id] = {k: fulfillment.canonical_view(v[-1])
                                  for k, v in emitted_states(settings, names).items()}
    assert views[live.app_id] == views[replayed.app_id]

    # While a live worker is in the group, replay refuses to run.
    assert worker_b.running
    with pytest.raises(ReplayRefused):
        Replayer(replayed).run(ReplayPlan())
