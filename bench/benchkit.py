"""Shared plumbing of the streaming benchmarks: broker, child processes, measuring, tables.

Every contender runs in its own child process; the parent watches progress from outside (topic
end offsets or committed offsets) and reads the child's CPU time and peak RSS from /proc, so
start-up (imports, rebalance, topic creation) stays out of the figures: the measured window
opens when the first progress is seen and closes when the job is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.procs import session_dying_with_parent

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / ".data" / "bench"  # git-ignored scratch: child logs, state dirs, the Quix venv
# The product code under test: the work tree, or an export of one commit (see use_code);
# children learn which from FSTREAMS_BENCH_SRC.
SRC = Path(os.environ.get("FSTREAMS_BENCH_SRC", ROOT))
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given broker, or the project's own embedded Apache Kafka for the duration."""
    if bootstrap:
        yield bootstrap
        return
    from streams.broker.launcher import EmbeddedKafka

    with EmbeddedKafka(heap="768m") as kafka:
        yield kafka.bootstrap


def create_topic(bootstrap: str, name: str, partitions: int, compact: bool = False) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"cleanup.policy": "compact"} if compact else {}
    admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(timeout=30)


def delete_topics(bootstrap: str) -> int:
    """Delete every topic but the broker's internal ones (between benchmarks sharing a broker,
    so one's leftovers are not compacted or fetched during the next one). Returns how many."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=30).topics if not t.startswith("__")]
    for future in admin.delete_topics(topics, operation_timeout=60).values() if topics else ():
        with contextlib.suppress(Exception):  # already gone: fine
            future.result()
    return len(topics)


class Offsets:
    """End offsets and committed offsets, asked of the broker (never cached)."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watch",
                                  "enable.auto.commit": False})
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._parts: dict[str, list[int]] = {}
        self._last: dict[str, int] = {}

    def partitions(self, topic: str) -> list[int]:
        if topic not in self._parts:
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            self._parts[topic] = sorted(meta.partitions)
        return self._parts[topic]

    def end(self, topic: str) -> int:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            total = sum(self.consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
                        for p in self.partitions(topic))
        except KafkaException:  # a topic created a moment ago may not have its leaders yet
            return self._last.get(topic, 0)
        self._last[topic] = total
        return total

    def committed(self, group: str, topics: Sequence[str]) -> int:
        """Sum of `group`'s committed offsets on `topics` (0 while it has none)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException

        result = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        try:
            tps = result[group].result(timeout=15).topic_partitions or []
        except KafkaException:  # the group's coordinator is still loading
            return 0
        return sum(tp.offset for tp in tps if tp.offset >= 0 and tp.topic in topics)

    def close(self) -> None:
        self.consumer.close()


# -- child processes ------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """user+sys CPU of a process and all its threads (librdkafka's included)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """user+sys CPU from a /proc stat file (a process's, or one thread's under task/)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops its children and the broker."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Child:
    """A contender process in its own session (so stop() ends it and nothing else)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.name = name
        self.log = log or WORK / "logs" / f"{name}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(list(argv), cwd=SRC, env={**os.environ, **(env or {})},
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=session_dying_with_parent)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def fail(self, what: str) -> RuntimeError:
        tail = self.log.read_text(errors="replace")[-2500:]
        return RuntimeError(f"{self.name} {what} (exit {self.proc.poll()}); log {self.log}:\n"
                            f"{tail}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class Run:
    name: str
    events: int
    seconds: float
    cpu_s: float
    rss_mb: float
    capped: bool = False  # the window hit --max-seconds before the job was done

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s * 1e6 / self.events if self.events else 0.0


def watch(child: Child, progress: Callable[[], int], total: int,
          done: Callable[[], bool] | None = None, timeout: float = 300.0,
          max_seconds: float = 0.0, interval: float = 0.1) -> Run:
    """Measure `child` from its first visible progress until progress reaches `total` (and
    `done()` holds), or until the window is `max_seconds` long (slow contenders: their steady
    rate over a capped window); then stop it. Events are those processed inside the window."""
    deadline = time.monotonic() + timeout
    t0 = cpu0 = 0.0
    count0 = -1
    try:
        while time.monotonic() < deadline:
            if not child.running:
                raise child.fail("exited before it finished")
            count = progress()
            now = time.monotonic()
            if count0 < 0 and count > 0:
                t0, count0, cpu0 = now, count, proc_cpu_seconds(child.proc.pid)
            finished = count >= total and (done is None or done())
            capped = count0 >= 0 and max_seconds > 0 and now - t0 >= max_seconds
            if finished or capped:
                return Run(child.name, count - count0, now - t0,
                           proc_cpu_seconds(child.proc.pid) - cpu0,
                           proc_peak_rss_mb(child.proc.pid), capped=capped and not finished)
            time.sleep(interval)
        raise TimeoutError(f"{child.name} did not finish within {timeout}s (log {child.log})")
    finally:
        child.stop()


def wait_report(child: Child, report: Path, timeout: float = 300.0) -> dict[str, float]:
    """For children that measure themselves and exit (raw ceilings, replay): their JSON."""
    try:
        child.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{child.name} did not finish within {timeout}s") from None
    finally:
        child.stop()
    if child.proc.returncode != 0 or not report.exists():
        raise child.fail("failed")
    data: dict[str, float] = json.loads(report.read_text())
    return data


def self_report(path: str, events: int, t0: float, t1: float, cpu0: float) -> None:
    """Written by a self-measuring child: its window, CPU in the window and peak RSS."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(path).write_text(json.dumps({
        "events": events, "seconds": t1 - t0, "cpu_s": usage.ru_utime + usage.ru_stime - cpu0,
        "rss_mb": usage.ru_maxrss / 1024}))


def cpu_now() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- reporting ------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


Medians = dict[str, tuple[float, float, float]]  # impl -> (events/s, CPU us/event, RSS MB)


def results_table(runs: dict[str, list[Run]], labels: dict[str, str], ceiling: str,
                  ceiling_header: str) -> tuple[Medians, str]:
    """Medians per contender and the Markdown table every bench prints (rate vs `ceiling`)."""
    med: Medians = {impl: (median([r.rate for r in rs]), median([r.cpu_us for r in rs]),
                           max(r.rss_mb for r in rs)) for impl, rs in runs.items() if rs}
    top = med.get(ceiling, (0.0, 0.0, 0.0))[0]
    rows = []
    for impl, (rate, cpu, rss) in med.items():
        rs = runs[impl]
        capped = sum(r.capped for r in rs)
        rows.append([labels[impl], f"{rate:,.0f}", f"{cpu:.1f}", f"{rss:.0f}",
                     f"{rate / top:.2f}" if top else "-",
                     f"{len(rs)}" + (f" ({capped} capped)" if capped else ""),
                     f"{median([r.events for r in rs]):,.0f}"])
    table = markdown(["implementation", "events/s", "CPU us/event", "peak RSS MB",
                      ceiling_header, "runs", "events measured"], rows)
    return med, table


def markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text + "\n")
    print(text, flush=True)
    print(f"\n(written to {path.relative_to(ROOT)})", flush=True)
    return path


def code_version() -> str:
    """The commit measured, and whether product files differed from it (shared work tree)."""
    head = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines()
             if not line[3:].startswith("bench/")]
    return f"commit {head}" + (f" + uncommitted changes to {len(dirty)} product files"
                               if dirty else "")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout


def use_code(ref: str) -> str:
    """Measure the product as of commit `ref` ("worktree": the files as they are now).

    The work tree is shared with engineers editing it, and a worker started in round 2 would
    otherwise run other code than round 1's. An export of the commit is made once under
    .data/bench/src/ and put first on the path of this process and of every child. Call it
    before anything imports the product. Returns a description for the results."""
    global SRC
    if ref == "worktree":
        return code_version()
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    if not sha:
        raise SystemExit(f"unknown commit {ref!r}")
    dest = WORK / "src" / sha[:12]
    if not (dest / ".complete").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (dest / ".complete").touch()
    SRC = dest
    sys.path.insert(0, str(dest))
    os.environ["FSTREAMS_BENCH_SRC"] = str(dest)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(dest), os.environ.get("PYTHONPATH", "")) if p)
    return f"commit {sha[:7]} (exported; work tree edits not included)"


def machine_line(code: str = "") -> str:
    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} CPUs, load average {load:.1f} at start, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{code or code_version()}")
