"""The bulk replay's partitions split over job processes, one `PartitionReplay` per share.

Job 0 runs in the calling process (it would otherwise only wait); jobs 1.. are children
started with `spawn` (a fresh interpreter: librdkafka clients must not cross a fork) that make
their own Kafka and registry clients. Each job reads only its partitions' input ranges; the
children report through a queue: progress while they run, "computed" once their share is
folded and its outputs produced, "done" once they have written their tables' changelogs and
every record of their share is acknowledged, "failed" with the reason otherwise.

Tables are written only after every job has computed its share (a barrier), so a job that
fails while folding leaves no replayed table behind in any partition. The caller commits the
live group's offsets only after every job is done: a failed, killed or interrupted job means
nothing is committed and the others are stopped.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from streams.replay_partitions import PartitionReplay, Ranges, ReplayPlan, ReplaySummary
from streams.schema_source import SchemaSource
from streams.settings import Settings

log = logging.getLogger(__name__)
# Below this many events a replay runs in one process: each extra job costs ~1.3 s of CPU to
# start (an interpreter, imports, clients), which a share of ~90 us per event only pays back
# from ~35,000 events on an idle 2-core machine.
AUTO_MIN_EVENTS = 50_000
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
    """Replay the first share in this process and each other share in a child process; the
    merged summary once every share is handed over. (This process would otherwise only
    wait, and each child costs an interpreter's start: imports, clients, ~1 s of CPU.)"""
    jobs = _Jobs(settings, source, plan, ranges, shares, progress)
    with _sigterm_interrupts() as sigterm:
        try:
            jobs.start(sigterm)
            jobs.run_here(source or _registry_source(settings), plan)
        finally:
            jobs.stop()
    return ReplaySummary.merged(jobs.done.values())


class _Jobs:
    """Job 0 here, jobs 1.. in children: what each reported, the barrier, failures."""

    def __init__(self, settings: Settings, source: SchemaSource | None, plan: ReplayPlan,
                 ranges: Ranges, shares: Sequence[Sequence[int]],
                 progress: Callable[[ReplaySummary], None] | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.settings = settings
        self.ranges = ranges
        self.shares = [list(share) for share in shares]
        self.progress = progress
        self.reports: Any = ctx.Queue()
        self.go = ctx.Event()
        root = logging.getLogger()
        log_setup = ((logging.getLevelName(root.getEffectiveLevel()), settings.log_format)
                     if root.handlers else None)
        self.children = {i: ctx.Process(target=_child, name=f"fstreams-replay-{i}",
                                        daemon=True, args=(i, settings, source, plan,
                                                           self.ranges_of(i), share,
                                                           self.reports, self.go, log_setup))
                         for i, share in enumerate(self.shares) if i > 0}
        self.latest: dict[int, ReplaySummary] = {}
        self.computed: set[int] = set()
        self.done: dict[int, ReplaySummary] = {}
        self.checked = time.monotonic()

    def ranges_of(self, index: int) -> Ranges:
        return {tp: r for tp, r in self.ranges.items() if tp[1] in self.shares[index]}

    def start(self, sigterm: _Sigterm) -> None:
        # SIGTERM is held while the children are spawned: raised inside `Process.start`, it
        # would leave a forked child whose pid this process never learned (seen once).
        with _sigint_ignored(), sigterm.held():  # children are born ignoring Ctrl-C
            for child in self.children.values():
                child.start()

    def run_here(self, source: SchemaSource, plan: ReplayPlan) -> None:
        share = PartitionReplay(self.settings, source, plan, self.ranges_of(0), self.shares[0])
        handed_over = False
        try:
            def progress(summary: ReplaySummary) -> None:
                self.note("progress", 0, summary)
                self.poll(0.0)  # between batches: the children's reports, failures

            self.note("computed", 0, self._own(share.compute, progress))
            self.wait_until(lambda: len(self.computed) == len(self.shares))
            self.note("done", 0, self._own(share.hand_over))
            handed_over = True
            self.wait_until(lambda: len(self.done) == len(self.shares))
        finally:
            share.close(flush=handed_over)

    def _own(self, step: Callable[..., ReplaySummary], *args: Any) -> ReplaySummary:
        try:
            return step(*args)
        except (ReplayFailed, ReplayInterrupted):
            raise
        except Exception as exc:
            raise self.failed(0, f"{type(exc).__name__}: {exc}") from exc

    def failed(self, index: int, reason: str) -> ReplayFailed:
        return ReplayFailed(f"replay job {index} (partitions {self.shares[index]}) failed: "
                            f"{reason}; nothing committed")

    def note(self, kind: str, index: int, payload: Any) -> None:
        """A job's report: its progress, its share computed or handed over, or its failure."""
        if kind == "failed":
            raise self.failed(index, payload)
        self.latest[index] = payload
        if kind == "computed":
            self.computed.add(index)
            if len(self.computed) == len(self.shares):
                self.go.set()  # every share folded: now each writes its tables
        elif kind == "done":
            self.done[index] = payload
        if self.progress is not None:
            self.progress(ReplaySummary.merged(self.latest.values()))

    def poll(self, timeout: float) -> None:
        """Take the reports queued (waiting up to `timeout` for one); notice dead children."""
        with contextlib.suppress(queue.Empty):
            first = self.reports.get(timeout=timeout) if timeout else self.reports.get_nowait()
            self.note(*first)
            while True:
                self.note(*self.reports.get_nowait())
        if time.monotonic() - self.checked < 0.5:
            return
        self.checked = time.monotonic()
        for index, child in self.children.items():
            if index in self.done or child.is_alive():
                continue
            last_words = time.monotonic() + 1.0  # may still be on their way
            with contextlib.suppress(queue.Empty):
                while index not in self.done and time.monotonic() < last_words:
                    self.note(*self.reports.get(timeout=0.2))
            if index not in self.done:
                raise self.failed(index, f"exited with code {child.exitcode} before handing "
                                         "over")

    def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.poll(0.2)

    def stop(self) -> None:
        _stop(list(self.children.values()))


def _registry_source(settings: Settings) -> SchemaSource:
    from streams.schema_source import RegistrySchemaSource

    return RegistrySchemaSource.from_settings(settings)


def _stop(children: Sequence[Any]) -> None:
    """Stop every child still running (SIGTERM, then SIGKILL after a grace period)."""
    children = [child for child in children if child.pid is not None]  # never started: none
    for child in children:
        if child.is_alive():
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()


class _Sigterm:
    """SIGTERM as ReplayInterrupted: raised at once, or, while held, when the hold ends.
    (Python runs signal handlers in the main thread, whichever thread the signal hit, so a
    flag holds it where a thread's signal mask would not.)"""

    def __init__(self) -> None:
        self.holding = False
        self.pending = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.pending = True
            return
        self.interrupt()

    @staticmethod
    def interrupt() -> None:
        raise ReplayInterrupted("replay stopped by SIGTERM; nothing committed")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.interrupt()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[_Sigterm]:
    """SIGTERM raises ReplayInterrupted (so the children are stopped and nothing committed)
    instead of ending the process at once and leaving them running."""
    sigterm = _Sigterm()
    if threading.current_thread() is not threading.main_thread():
        yield sigterm
        return
    previous = signal.signal(signal.SIGTERM, sigterm.handle)
    try:
        yield sigterm
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
        share = PartitionReplay(settings, source or _registry_source(settings), plan, ranges,
                                partitions)
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
