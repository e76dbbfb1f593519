"""The bulk replay split over job processes: same tables as in one process, and all or nothing.

A job that fails, is killed, or a replay stopped by SIGTERM must leave the live group's
offsets uncommitted and (when it happens before the hand-over) the order table unwritten.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from streams.broker.launcher import free_port
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.procs import fstreams
from streams.replay import Replayer, ReplayFailed, ReplayPlan
from streams.replay_jobs import job_count, split
from streams.settings import Settings
from streams.topics import ORDER_STATE_TABLE, changelog_topic
from tests.agents.conftest import worker_env
from tests.agents.oracle import live_records, oracle_records, verdicts
from tests.kafka_helpers import committed_offsets, end_offsets

pytestmark = pytest.mark.broker


def _produce(settings: Settings, orders: int) -> None:
    produce_to_kafka(generate(GeneratorConfig(orders=orders, seed=11)).events,
                     bootstrap=settings.bootstrap_servers, registry_url=settings.registry_url,
                     topic_prefix=settings.topic_prefix, partitions=settings.partitions)


def _replay(settings: Settings, jobs: int, plan: ReplayPlan | None = None) -> None:
    replayer = Replayer(settings, jobs=jobs)
    try:
        summary = replayer.run(plan or ReplayPlan(start="beginning", rebuild=True))
    finally:
        replayer.close()
    assert summary.jobs == jobs


def _jobs(pid: int) -> list[int]:
    """The replay's job processes (its other child is multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:  # threads (librdkafka's) come and go
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_job_count_and_split() -> None:
    assert job_count(3, partitions=4, events=10) == 3
    assert job_count(9, partitions=4, events=10) == 4  # at most one per partition
    assert job_count(0, partitions=4, events=10) == 1  # small: not worth a process
    assert split(4, 2, {0: 10, 1: 10, 2: 10, 3: 10}) == [[0, 2], [1, 3]]
    assert split(4, 2, {0: 30, 1: 10, 2: 10, 3: 10}) == [[0], [1, 2, 3]]
    assert split(4, 3, {}) == [[0, 3], [1], [2]]  # nothing to replay: still every partition


def test_jobs_write_the_same_tables_as_one_process(app_settings: Settings) -> None:
    """A rebuild, then more input replayed over the state each job reads back from its
    partitions of the changelogs: the same tables in one process, in three, and purely."""
    one = app_settings
    three = one.model_copy(update={"app_id": f"{one.app_id}-3"})  # shares of 2, 1 and 1
    events = generate(GeneratorConfig(orders=60, seed=11)).events
    cut = len(events) * 3 // 5
    for part, plan in ((events[:cut], ReplayPlan(start="beginning", rebuild=True)),
                       (events[cut:], ReplayPlan(start="committed"))):
        produce_to_kafka(part, bootstrap=one.bootstrap_servers, registry_url=one.registry_url,
                         topic_prefix=one.topic_prefix, partitions=one.partitions)
        _replay(one, jobs=1, plan=plan)
        _replay(three, jobs=3, plan=plan)
    assert verdicts(live_records(three)) == verdicts(live_records(one)) == verdicts(
        oracle_records(one))


def test_a_failed_job_commits_nothing(app_settings: Settings) -> None:
    _produce(app_settings, 20)
    # The jobs reach the registry themselves; none is listening here.
    unreachable = app_settings.model_copy(
        update={"registry_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ReplayFailed, match=r"replay job \d .*RegistryUnavailable.*nothing "
                                           "committed"):
        _replay(unreachable, jobs=2)
    assert committed_offsets(app_settings.bootstrap_servers, app_settings.app_id) == {}


@pytest.mark.parametrize("stop", ["kill a job", "SIGTERM the replay"])
def test_a_killed_job_or_a_stopped_replay_commits_nothing(
        app_settings: Settings, stop: str) -> None:
    settings = app_settings
    _produce(settings, 40)
    env = {**os.environ, **worker_env(settings)}
    proc = subprocess.Popen(fstreams("replay", "--from", "beginning", "--rebuild", "--jobs", "2"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (jobs := _jobs(proc.pid)):  # job 1 is starting up (job 0 is the replay)
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the replay started no jobs"
            time.sleep(0.02)
        if stop == "kill a job":
            os.kill(jobs[0], signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if stop == "kill a job":
        assert proc.returncode == 1, err
        assert "exited with code -9 before handing over; nothing committed" in err
    else:
        assert proc.returncode == 143, err
        assert "replay stopped by SIGTERM; nothing committed" in err
    assert not any(_alive(pid) for pid in jobs)  # stopped (or killed), not left running
    assert committed_offsets(settings.bootstrap_servers, settings.app_id) == {}
    # Stopped before every job had folded its share: no job wrote the order table.
    changelog = changelog_topic(settings.app_id, ORDER_STATE_TABLE)
    assert sum(end_offsets(settings.bootstrap_servers, [changelog]).values()) == 0
