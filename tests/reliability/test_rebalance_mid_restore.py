"""Rebalances that land while a worker restores its tables: a rolling restart's case.

Worker-1 restarts on an empty data dir and restores its partitions from the changelogs. While
it restores, worker-2 leaves (worker-1 is handed every partition) and joins again (worker-1
hands two back). A rebalance interrupts the restore under way; the new assignment's restore
starts from what the interrupted one wrote. Both workers then finish the input with the pure
oracle's verdicts and only detectable duplicates, and worker-1, left alone, serves every order
from its own tables as the oracle has it.

A broker fetch quota on worker-1's restoring client (a real Kafka quota, set with Kafka's own
ConfigCommand) makes a restore last tens of seconds, so the rebalances land inside it rather
than racing it; the worker's log must show that one did at least. Run once through Faust's
record-by-record recovery (bulk restore off) and once through the bulk restore
(streams/bulk_restore.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.broker.launcher import free_port
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.settings import Settings
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import wait_for_zero_lag
from tests.reliability.support import (
    assert_duplicates_detectable,
    assert_live_equals_oracle,
    assert_served_equals_oracle,
    consumer_quota,
    input_progress,
    names_of,
    produce,
    readyz,
    wait_for,
)

pytestmark = pytest.mark.broker

# path -> (the client that restores, its fetch quota in bytes/s, worker-1's environment, what
# its log says as a restore of an assignment begins). At these rates a restore of two of the
# four partitions (~1,200 orders in all) takes 20-35 s. Faust's consumer waits out the
# throttle for its offset requests too, so its quota is the higher one.
PATHS = {
    "faust": ("worker-1-faust", 300_000, {"FSTREAMS_RESTORE_BULK_MIN_RECORDS": "0"},
              "Restoring state from changelog topics"),
    "bulk": ("worker-1-restore", 150_000, {}, "bulk restore of "),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_leave_and_join_mid_restore(path: str, app_settings: Settings, start: StartWorker,
                                    tmp_path: Path) -> None:
    settings = app_settings
    client, quota, env, restoring = PATHS[path]
    events = generate(GeneratorConfig(orders=1200, seed=99)).events
    cut = len(events) * 3 // 4
    produce(settings, events[:cut])
    port1, port2 = free_port(), free_port()
    first = start("worker-1", FSTREAMS_DATA_DIR=str(tmp_path / "w1"), FSTREAMS_WEB_PORT=str(port1))
    second = start("worker-2", FSTREAMS_DATA_DIR=str(tmp_path / "w2"),
                   FSTREAMS_WEB_PORT=str(port2))
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names_of(settings).inputs,
                      workers=[first, second])

    first.stop()
    consumer_quota(settings.bootstrap_servers, client, quota)
    log = tmp_path / "worker-1.log"
    since = log.stat().st_size

    def restores() -> int:
        return log.read_text()[since:].count(restoring)

    try:
        first = start("worker-1", FSTREAMS_DATA_DIR=str(tmp_path / "w1-empty"),
                      FSTREAMS_WEB_PORT=str(port1), **env)
        wait_for("worker-1 restoring", lambda: restores() >= 1, workers=[first, second])
        second.stop()  # leaves: worker-1 is handed every partition
        wait_for("worker-1 restoring what worker-2 left", lambda: restores() >= 2,
                 workers=[first])
        second = start("worker-2", FSTREAMS_DATA_DIR=str(tmp_path / "w2"),
                       FSTREAMS_WEB_PORT=str(port2))  # joins: worker-1 hands a share back
        wait_for("both workers ready", lambda: readyz(port1) == 200 and readyz(port2) == 200,
                 timeout=240, workers=[first, second])
    finally:
        consumer_quota(settings.bootstrap_servers, client, None)
    # A restore that is not interrupted ends with the worker ready, so restores started minus
    # readies is a lower bound of the restores a rebalance interrupted. The first restore may
    # win its race with worker-2's leave (the quota lets a first burst of fetches through);
    # the throttled second one does not outlast worker-2's start.
    text = log.read_text()[since:]
    started, readies = text.count(restoring), text.count("Worker ready")
    assert started - readies >= 1, f"no rebalance landed mid-restore: {started} restores " \
                                   f"started, {readies} ended with the worker ready"

    # Worker-1 alone serves every order from its own tables: what it restored (with the
    # interruptions) and what it kept as a standby of worker-2's partitions.
    second.stop()
    wait_for("worker-1 ready alone", lambda: readyz(port1) == 200, workers=[first])
    produce(settings, events[cut:])
    wait_for("every input record in the topics",
             lambda: input_progress(settings)[1] == len(events), timeout=30)
    wait_for_zero_lag(settings.bootstrap_servers, settings.app_id, names_of(settings).inputs,
                      workers=[first])
    assert_duplicates_detectable(settings, assert_live_equals_oracle(settings))
    assert_served_equals_oracle(settings, f"http://127.0.0.1:{port1}")
