"""The bulk replay's partitions split over job processes, one `PartitionReplay` per share.

Children are started with `spawn` (a fresh interpreter: librdkafka clients must not cross a
fork) and make their own Kafka and registry clients. Each reads only its partitions' input
ranges and reports through a queue: progress while it runs, "computed" once its share is
folded and its outputs produced, "done" once it has written its tables' changelogs and every
record of its share is acknowledged, "failed" with the reason otherwise.

Tables are written only after every child has computed its share (a barrier), so a child that
fails while folding leaves no replayed table behind in any partition. The caller commits the
live group's offsets only after every child is done: a failed, killed or interrupted child
means nothing is committed and the others are stopped.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from streams.replay_partitions import PartitionReplay, Ranges, ReplayPlan, ReplaySummary
from streams.schema_source import SchemaSource
from streams.settings import Settings

log = logging.getLogger(__name__)
# Below this many events a replay runs in one process: starting an interpreter per job
# (imports, clients, reading the changelogs) costs about a second on a small machine.
AUTO_MIN_EVENTS = 20_000
PROGRESS_EVERY_S = 0.5  # how often a child reports its counts
STOP_GRACE_S = 5.0  # a child asked to stop has this long before it is killed


class ReplayFailed(RuntimeError):
    """A replay job failed: nothing was committed; the message says which and why."""


class ReplayInterrupted(RuntimeError):
    """The replay was stopped (SIGTERM) before it committed: nothing was committed."""


def available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def job_count(requested: int, partitions: int, events: int) -> int:
    """`requested` processes (0: one per CPU, for replays large enough to pay for them), at
    most one per partition."""
    if requested <= 0:
        requested = available_cpus() if events >= AUTO_MIN_EVENTS else 1
    return max(1, min(requested, partitions))


def split(partitions: int, jobs: int, load: Mapping[int, int]) -> list[list[int]]:
    """Partitions over `jobs` shares, the busiest first to the least loaded share, so the
    events to replay (`load`: partition -> events) are spread as evenly as they can be."""
    shares: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for p in sorted(range(partitions), key=lambda p: (-load.get(p, 0), p)):
        i = min(range(jobs), key=lambda j: (loads[j], len(shares[j])))
        shares[i].append(p)
        loads[i] += load.get(p, 0)
    return [sorted(share) for share in shares if share]


def run_jobs(settings: Settings, source: SchemaSource | None, plan: ReplayPlan,
             ranges: Ranges, shares: Sequence[Sequence[int]],
             progress: Callable[[ReplaySummary], None] | None = None) -> ReplaySummary:
    """Replay each share in a child process; the merged summary once all handed over."""
    ctx = multiprocessing.get_context("spawn")
    reports: Any = ctx.Queue()
    go = ctx.Event()
    root = logging.getLogger()
    log_setup = ((logging.getLevelName(root.getEffectiveLevel()), settings.log_format)
                 if root.handlers else None)
    children = [ctx.Process(target=_child, name=f"fstreams-replay-{i}", daemon=True,
                            args=(i, settings, source, plan,
                                  {tp: r for tp, r in ranges.items() if tp[1] in share},
                                  list(share), reports, go, log_setup))
                for i, share in enumerate(shares)]
    latest: dict[int, ReplaySummary] = {}
    computed: set[int] = set()
    done: dict[int, ReplaySummary] = {}

    def handle(kind: str, index: int, payload: Any) -> None:
        if kind == "failed":
            raise ReplayFailed(f"replay job {index} (partitions {list(shares[index])}) failed: "
                               f"{payload}; nothing committed")
        latest[index] = payload
        if kind == "computed":
            computed.add(index)
            if len(computed) == len(children):
                go.set()  # every share folded: now each writes its tables
        elif kind == "done":
            done[index] = payload
        if progress is not None:
            progress(ReplaySummary.merged(latest.values()))

    with _sigterm_interrupts():
        try:
            with _sigint_ignored():  # children are born ignoring Ctrl-C
                for child in children:
                    child.start()
            checked = time.monotonic()
            while len(done) < len(children):
                with contextlib.suppress(queue.Empty):
                    handle(*reports.get(timeout=0.2))
                if time.monotonic() - checked >= 0.5:
                    checked = time.monotonic()
                    for index in _dead(children, done):  # one that died without a word?
                        last_words = time.monotonic() + 1.0  # may still be in the queue
                        with contextlib.suppress(queue.Empty):
                            while index not in done and time.monotonic() < last_words:
                                handle(*reports.get(timeout=0.2))
                        if index not in done:
                            raise ReplayFailed(
                                f"replay job {index} (partitions {list(shares[index])}) exited "
                                f"with code {children[index].exitcode} before handing over; "
                                "nothing committed")
        finally:
            _stop(children)
    return ReplaySummary.merged(done.values())


def _dead(children: Sequence[Any], done: Mapping[int, ReplaySummary]) -> list[int]:
    return [i for i, child in enumerate(children) if i not in done and not child.is_alive()]


def _stop(children: Sequence[Any]) -> None:
    """Stop every child still running (SIGTERM, then SIGKILL after a grace period)."""
    for child in children:
        if child.is_alive():
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises ReplayInterrupted (so the children are stopped and nothing committed)
    instead of ending the process at once and leaving them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise ReplayInterrupted("replay stopped by SIGTERM; nothing committed")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """A process started with SIGINT ignored keeps ignoring it: Ctrl-C reaches the whole
    process group, and the parent alone decides (it stops the children)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- child side ------------------------------------------------------------------------------
def _child(index: int, settings: Settings, source: SchemaSource | None, plan: ReplayPlan,
           ranges: Ranges, partitions: list[int], reports: Any, go: Any,
           log_setup: tuple[str, str] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        if log_setup is not None:
            from streams import logs

            logs.configure(*log_setup)
        if source is None:
            # authlib (under the registry client) warns about httpx on import, as in the CLI.
            warnings.filterwarnings("ignore", message=".*httpx module is deprecated.*")
            from streams.schema_source import RegistrySchemaSource

            source = RegistrySchemaSource.from_settings(settings)
        share = PartitionReplay(settings, source, plan, ranges, partitions)
        last = [0.0]

        def report(summary: ReplaySummary) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                reports.put(("progress", index, summary))

        reports.put(("computed", index, share.compute(report)))
        while not go.wait(0.5):
            if os.getppid() != parent:  # the parent is gone: hand nothing over
                log.warning("replay job %d: parent exited; tables not written", index)
                raise SystemExit(1)
        reports.put(("done", index, share.hand_over()))
        share.close()
    except SystemExit:
        raise
    except BaseException as exc:
        log.error("replay job %d (partitions %s) failed:\n%s", index, partitions,
                  traceback.format_exc())
        reports.put(("failed", index, f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
