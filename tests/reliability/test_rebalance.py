"""A second worker joins mid-stream, takes partitions, processes some of the input and leaves
again (a clean stop); the group ends with the pure oracle's verdicts and only detectable
duplicates in the emitted states. Partitions with nothing committed yet change owner here:
the case where Faust's consumer skipped records it had dropped (streams/offset_guard.py)."""

from __future__ import annotations

from functools import partial

import pytest

from streams.broker.launcher import free_port
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.settings import Settings
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import wait_for_zero_lag
from tests.reliability.support import (
    Feeder,
    assert_duplicates_detectable,
    assert_live_equals_oracle,
    events_consumed,
    input_progress,
    names_of,
    produce,
    readyz,
    wait_for,
)

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_worker_joins_and_leaves_mid_stream(guarantee: str, app_settings: Settings,
                                            start: StartWorker) -> None:
    """Join, share the work, leave: the survivor finishes with the oracle's verdicts. Under
    exactly-once the hand-overs emit nothing twice (a read_committed reader sees no
    duplicate): the leaver commits its last transaction, offsets included, before it goes."""
    settings = app_settings.model_copy(update={"processing_guarantee": guarantee})
    start = partial(start, FSTREAMS_PROCESSING_GUARANTEE=guarantee)
    events = generate(GeneratorConfig(orders=100, seed=777)).events
    cut = len(events) // 4
    produce(settings, events[:cut])
    first = start("worker-1")
    wait_for("committing input", lambda: input_progress(settings)[0] > 0, workers=[first])

    # The joiner starts while input flows. The last quarter is held back until it is ready:
    # a joiner slower to start than the feed (a loaded machine) would otherwise get its
    # partitions after the first worker had read them to their end, and consume nothing.
    held = len(events) - len(events) // 4
    feeder = Feeder(settings, events[cut:held], rate=70.0)
    feeder.start()
    port = free_port()
    second = start("worker-2", FSTREAMS_WEB_PORT=str(port))
    wait_for("the joiner ready", lambda: readyz(port) == 200, timeout=180,
             workers=[first, second])
    feeder.join()
    rest = Feeder(settings, events[held:], rate=70.0)
    rest.start()
    wait_for("the joiner consuming", lambda: events_consumed(port) > 0, timeout=120,
             workers=[first, second])
    second.stop()  # SIGTERM: leaves the group, partitions move back to the first worker
    rest.join()
    # Delivered means acknowledged; the end offsets a metadata request reports can trail the
    # acknowledgement briefly on a loaded broker, so poll rather than read once.
    wait_for("every input record in the topics",
             lambda: input_progress(settings)[1] == len(events), timeout=30)

    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names_of(settings).inputs,
                      workers=[first])
    live = assert_live_equals_oracle(settings)
    duplicates = assert_duplicates_detectable(settings, live)
    if guarantee == "exactly_once":
        assert duplicates == 0
