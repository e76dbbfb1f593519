"""Plumbing of the benchmarks that run the real job: registry, generated input, `fstreams worker`
children, their counters and readiness, RSS sampling, output quiet detection and py-spy profiles.

Shared by fulfillment_bench, throughput_bench, latency_bench, recovery_bench and scaleout_bench;
benchkit.py holds what every benchmark uses (broker, children, windows, tables).
"""

from __future__ import annotations

import collections
import json
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchkit

# A SIGKILLed member leaves the group after this session (the reliability tests use the same);
# the product's 60 s default is for production, where a slow worker must not be kicked out.
FAST_GROUP = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}


# -- registry and input ---------------------------------------------------------------------
def start_registry(bootstrap: str) -> tuple[benchkit.Child, str]:
    """The project's schema registry on its own fresh topic; (child, URL) once it is ready."""
    from streams.broker.launcher import free_port
    from streams.procs import http_ok

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child = benchkit.Child("registry", [sys.executable, "-m", "registry"], env={
        "FSTREAMS_REGISTRY_BOOTSTRAP_SERVERS": bootstrap, "FSTREAMS_REGISTRY_PORT": str(port),
        "FSTREAMS_REGISTRY_TOPIC": f"_schemas-bench-{uuid.uuid4().hex[:6]}"})
    deadline = time.monotonic() + 90
    while not http_ok(f"{url}/_ready"):
        if not child.running or time.monotonic() > deadline:
            child.stop()
            raise child.fail("did not become ready")
        time.sleep(0.2)
    return child, url


@dataclass
class Input:
    """Generated traffic of one benchmark: its topics' prefix, size and ground truth."""

    prefix: str
    events: int  # records in the four input topics (bad records and duplicates included)
    orders: int  # orders of the ground truth (orphans excluded)
    truth: dict[str, Any] = field(default_factory=dict)  # the generator's truth["counts"]
    produce_s: float = 0.0

    @property
    def mismatches(self) -> int:
        return sum(self.truth.get("mismatches", {}).values())

    @property
    def breaches(self) -> int:
        return sum(self.truth.get("sla_breaches", {}).values())


def generated_events(orders: int, seed: int) -> tuple[list[Any], dict[str, Any]]:
    """`streams.generator` traffic for `orders` orders (~12 events each) and its counts."""
    from streams.generator import GeneratorConfig, generate

    generated = generate(GeneratorConfig(orders=orders, seed=seed))
    return generated.events, generated.truth.to_json()["counts"]


def produce_events(events: Sequence[Any], bootstrap: str, registry: str, prefix: str,
                   partitions: int, rate: float | None = None) -> int:
    """Through the product's producer SDK (paced to `rate` events/s when given)."""
    from streams.generator.output import produce_to_kafka

    delivered = produce_to_kafka(events, bootstrap=bootstrap, registry_url=registry,
                                 topic_prefix=prefix, partitions=partitions, rate=rate)
    if delivered != len(events):
        raise RuntimeError(f"only {delivered} of {len(events)} input events were delivered")
    return delivered


class Feed:
    """One producer kept open across calls (a new one's first delivery takes up to seconds on a
    busy machine: connection, idempotent producer id, registry lookups); sends events the way
    `streams.generator.output.produce_to_kafka` does, optionally paced."""

    def __init__(self, bootstrap: str, registry: str, prefix: str, partitions: int) -> None:
        from streams.producer import EventProducer
        from streams.schema_source import RegistrySchemaSource
        from streams.topics import TopicNames, ensure_topics

        self.names = TopicNames.with_prefix(prefix)
        ensure_topics(bootstrap, self.names, partitions)
        self.producer = EventProducer(bootstrap, RegistrySchemaSource(registry),
                                      names=self.names, validate=False)

    def send(self, events: Sequence[Any], rate: float | None = None) -> None:
        from streams.generator.output import Pacer
        from streams.producer import record_key

        producer, pacer = self.producer, Pacer(len(events), rate, None)
        for ev in events:
            topic = getattr(self.names, ev.topic)
            key = ev.key.encode() if ev.key is not None else None
            if ev.raw is not None:
                producer.produce_raw(topic, key, ev.raw)
            elif ev.is_bad:
                name = producer.record_name(topic, None)
                value = producer.encoder(topic, name).encode(ev.value)
                producer.produce_raw(topic, key or record_key(name, ev.value), value)
            else:
                producer.send(topic, ev.value, key=key)
            pacer.tick()
        if producer.flush(60) or producer.errors:
            raise RuntimeError(f"input not delivered: {producer.errors[:1]}")

    def close(self) -> None:
        self.producer.close()


def produce_input(bootstrap: str, registry: str, orders: int, seed: int,
                  partitions: int = 4, tag: str = "in") -> Input:
    """Generate `orders` orders of traffic and produce them into a fresh set of topics."""
    prefix = f"{tag}-{uuid.uuid4().hex[:6]}-"
    events, counts = generated_events(orders, seed)
    started = time.monotonic()
    produce_events(events, bootstrap, registry, prefix, partitions)
    return Input(prefix, len(events), counts["orders"], counts, time.monotonic() - started)


# -- workers ----------------------------------------------------------------------------------
@dataclass
class Worker:
    """A real `fstreams worker` child and the port of its HTTP API."""

    child: benchkit.Child
    port: int
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.child.proc.pid

    def counters(self) -> dict[str, int]:
        return counters(self.port)

    def consumed(self) -> int:
        return self.counters().get("fstreams_events_consumed_total", -1)

    def ready(self) -> bool:
        return readyz(self.port)[0] == 200


def start_worker(bootstrap: str, registry: str, prefix: str, app_id: str, data_dir: Path,
                 worker_id: str = "worker-1", partitions: int = 4,
                 env: dict[str, str] | None = None, log_name: str = "") -> Worker:
    """A real `fstreams worker`, configured like tests/agents/conftest.py does."""
    from streams.broker.launcher import free_port
    from streams.procs import fstreams

    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    name = log_name or f"{app_id}-{worker_id}"
    child = benchkit.Child(name, fstreams("worker"), env={
        "FSTREAMS_BOOTSTRAP_SERVERS": bootstrap, "FSTREAMS_REGISTRY_URL": registry,
        "FSTREAMS_TOPIC_PREFIX": prefix, "FSTREAMS_APP_ID": app_id,
        "FSTREAMS_DATA_DIR": str(data_dir), "FSTREAMS_PARTITIONS": str(partitions),
        "FSTREAMS_WORKER_ID": worker_id, "FSTREAMS_WEB_PORT": str(port), **(env or {})})
    return Worker(child, port, data_dir)


def counters(port: int) -> dict[str, int]:
    """The worker's own counters from its /metrics (events consumed are exact, unlike commits):
    name -> value, summed over labels; empty while the worker does not answer."""
    out: dict[str, int] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("fstreams_") and line.split("{")[0].split(" ")[0].endswith("_total"):
            name = line.split("{")[0].split(" ")[0]
            out[name] = out.get(name, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """(status, body) of the worker's /readyz; (0, {}) while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read())
        except ValueError:
            return err.code, {}
    except (OSError, ValueError):
        return 0, {}


def wait_consuming(workers: Sequence[Worker], timeout: float) -> None:
    """Until every worker has consumed something (start-up and rebalance are over)."""
    deadline = time.monotonic() + timeout
    while True:
        for w in workers:
            if not w.child.running:
                raise w.child.fail("exited before it consumed anything")
        if all(w.consumed() > 0 for w in workers):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers consumed nothing within {timeout}s")
        time.sleep(0.2)


# -- watching the outputs ---------------------------------------------------------------------
class QuietWatch:
    """The end offsets of some topics and when they last grew: a job is done when its inputs
    are consumed and its outputs have been quiet for a while; it ended at their last growth."""

    def __init__(self, offsets: benchkit.Offsets, topics: Sequence[str]) -> None:
        self.offsets, self.topics = offsets, list(topics)
        self.total = self.poll_total()
        self.last_growth = time.monotonic()

    def poll_total(self) -> int:
        return sum(self.offsets.end(t) for t in self.topics)

    def poll(self) -> float:
        """Seconds since the outputs last grew (0.0 if they grew just now)."""
        total = self.poll_total()
        now = time.monotonic()
        if total != self.total:
            self.total, self.last_growth = total, now
        return now - self.last_growth


# -- memory -----------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), MB; 0.0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class RssSample:
    t: float  # monotonic
    rss_mb: float
    events: int  # processed by then
    wal_mb: float  # RocksDB write-ahead logs in the data dir: memtable contents not flushed
    cpu_s: dict[str, float] = field(default_factory=dict)  # thread_cpu() by then


# Thread groups of a worker by their OS thread name (/proc/<pid>/task/<tid>/comm): RocksDB
# and librdkafka name theirs; Python's threads (the event loop, Faust's consumer thread)
# keep the process's name.
THREAD_GROUPS = {"rocksdb:": "RocksDB flushes and compactions", "rdk:": "librdkafka threads"}
PYTHON_GROUP = "Python threads (event loop, fold, Faust)"


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user+sys) of `pid` so far: "total" and per THREAD_GROUPS label, the rest
    (threads ended meanwhile included) under PYTHON_GROUP; empty once the process is gone."""
    try:
        total = benchkit.proc_cpu_seconds(pid)
        tids = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return {}
    groups = dict.fromkeys(THREAD_GROUPS.values(), 0.0)
    for tid in tids:
        try:
            comm = (tid / "comm").read_text().strip()
            label = next((v for k, v in THREAD_GROUPS.items() if comm.startswith(k)), None)
            if label is not None:
                groups[label] += benchkit.stat_cpu_seconds(tid / "stat")
        except OSError:  # the thread ended meanwhile
            continue
    groups[PYTHON_GROUP] = max(total - sum(groups.values()), 0.0)
    return {"total": total, **groups}


def wal_mb(data_dir: Path) -> float:
    """Bytes of RocksDB write-ahead logs (NNNNNN.log) under `data_dir`, MB. Each mirrors a
    memtable not yet flushed to an SST, so it shows how much of the RSS memtables hold."""
    total = 0
    for wal in data_dir.rglob("*.log"):
        if wal.stem.isdigit():
            try:
                total += wal.stat().st_size
            except OSError:  # rotated away meanwhile
                continue
    return total / 2**20


class RssSampler(threading.Thread):
    """Samples a worker's RSS (and its RocksDB WAL size) every `every_s` seconds, with the
    events it had processed then (`progress`)."""

    def __init__(self, pid: int, data_dir: Path, progress: Callable[[], int],
                 every_s: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.data_dir, self.progress, self.every_s = pid, data_dir, progress, every_s
        self.samples: list[RssSample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            mb = rss_mb(self.pid)
            if mb:
                self.samples.append(RssSample(time.monotonic(), mb, self.progress(),
                                              wal_mb(self.data_dir), thread_cpu(self.pid)))
            self._stop_event.wait(self.every_s)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(5)

    def between(self, t0: float, t1: float) -> list[RssSample]:
        return [s for s in self.samples if t0 <= s.t <= t1]


def rss_quartiles(samples: Sequence[float]) -> list[float]:
    """Medians of the four consecutive quarters of the samples (fewer than 4: all of them)."""
    if len(samples) < 4:
        return [statistics.median(samples)] * 4 if samples else [0.0] * 4
    n = len(samples)
    return [statistics.median(samples[i * n // 4:(i + 1) * n // 4]) for i in range(4)]


def rss_verdict(quartiles: Sequence[float], tolerance: float = 0.15) -> str:
    """"flat" unless the last quarter's median exceeds the second quarter's by `tolerance`.
    The second quarter, not the first: the first holds start-up (imports, caches filling)."""
    return "grows" if quartiles[3] > quartiles[1] * (1 + tolerance) else "flat"


# -- machine CPU ------------------------------------------------------------------------------
def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / benchkit.CLK_TCK, total / benchkit.CLK_TCK


# -- profiles ---------------------------------------------------------------------------------
def py_spy() -> str | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return spy if Path(spy).exists() else None


class Spy:
    """py-spy sampling a process (100 Hz, non-blocking) from start() until stop()."""

    def __init__(self, pid: int, raw: Path) -> None:
        self.pid, self.raw = pid, raw
        self.proc: subprocess.Popen[str] | None = None

    def start(self, seconds: float = 0.0) -> Spy:
        exe = py_spy()
        if exe is None:
            return self
        self.raw.parent.mkdir(parents=True, exist_ok=True)
        self.raw.unlink(missing_ok=True)
        duration = ["-d", str(max(int(seconds), 1))] if seconds else []
        self.proc = subprocess.Popen([exe, "record", "-p", str(self.pid), *duration, "-r", "100",
                                      "-f", "raw", "-o", str(self.raw), "--nonblocking"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return self

    def stop(self, timeout: float = 30.0) -> Profile:
        """Ends the recording (SIGINT makes py-spy write what it has) and reads it."""
        if self.proc is None:
            return Profile()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        if not self.raw.exists():  # e.g. the process ended before py-spy attached
            print(f"py-spy recorded nothing ({self.proc.returncode}): {out.strip()[-300:]}",
                  flush=True)
            return Profile()
        return Profile.read(self.raw)


def spy(pid: int, seconds: float, raw: Path) -> Profile:
    """py-spy samples of `pid` for `seconds` (empty without py-spy)."""
    recording = Spy(pid, raw).start(seconds)
    if recording.proc is not None:
        recording.proc.wait(seconds + 30)
    return recording.stop()


@dataclass
class Profile:
    """py-spy's folded stacks (root;...;leaf -> samples)."""

    stacks: collections.Counter[str] = field(default_factory=collections.Counter)

    @classmethod
    def read(cls, raw: Path) -> Profile:
        stacks: collections.Counter[str] = collections.Counter()
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            if n.isdigit():  # py-spy's notes (e.g. about paths) are not samples
                stacks[stack] += int(n)
        return cls(stacks)

    @property
    def total(self) -> int:
        return sum(self.stacks.values())

    def own(self) -> collections.Counter[str]:
        """Samples per leaf function (lines of one function merged)."""
        own: collections.Counter[str] = collections.Counter()
        for stack, n in self.stacks.items():
            func, _, where = stack.split(";")[-1].partition(" (")
            own[f"{func} ({shorten(where.rsplit(':', 1)[0])})"] += n
        return own

    def inside(self, fragment: str) -> float:
        """Share of samples with `fragment` anywhere in the stack (inclusive time)."""
        hit = sum(n for stack, n in self.stacks.items() if fragment in stack)
        return hit / self.total if self.total else 0.0


def shorten(path: str) -> str:
    """site-packages/faust/x.py -> faust/x.py; /work/main/streams/x.py -> streams/x.py."""
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    root = str(benchkit.SRC) + "/"
    return path[len(root):] if path.startswith(root) else path


# Inclusive shares worth knowing in a live worker's profile (py-spy names files relative to
# sys.path, so "(tables/" is the domain and "(faust/tables/" is Faust's).
LIVE_PARTS = {
    "fulfillment agent batch (agents/fulfillment.py)": "(agents/fulfillment.py",
    "domain: fold, evaluate, SLA, reconciliation (tables/)": "(tables/",
    "Avro decode/encode (streams/serde.py)": "(streams/serde.py",
    "output sink, librdkafka (streams/sink.py)": "(streams/sink.py",
    "table batch: state JSON, get/put (streams/batching.py)": "(streams/batching.py",
    "RocksDB store (faust/stores/)": "(faust/stores/",
    "Faust consumer and transport (faust/transport/)": "(faust/transport/",
    "Faust streams (faust/streams.py)": "(faust/streams.py",
    "aiokafka": "(aiokafka/",
    "metrics agents (agents/metrics.py)": "(agents/metrics.py",
}
RECOVERY_PARTS = {
    "Faust recovery loop (faust/tables/recovery.py)": "(faust/tables/recovery.py",
    "writing restored records to RocksDB (faust/stores/)": "(faust/stores/",
    "Faust per-message dispatch (faust/transport/conductor.py)": "(faust/transport/conductor.py",
    "Faust consumer (faust/transport/consumer.py)": "(faust/transport/consumer.py",
    "aiokafka fetch and record parsing": "(aiokafka/",
}


def profile_section(title: str, profile: Profile, cpu_us: float = 0.0, top: int = 15,
                    inside: dict[str, str] | None = None) -> str:
    """Markdown: the `top` functions by own time (share of samples, ~CPU us per event when
    `cpu_us` is given), and the inclusive share of the `inside` label -> stack fragments."""
    if not profile.total:
        why = ("py-spy is not installed (make bench installs the bench extra)"
               if py_spy() is None else "py-spy recorded no samples")
        return f"### {title}\n\n_profile skipped: {why}_"
    total = profile.total
    rows = [[f"`{func}`", f"{n / total * 100:.1f}%"]
            + ([f"{n / total * cpu_us:.0f}"] if cpu_us else [])
            for func, n in profile.own().most_common(top)]
    headers = ["function (own time)", "share of samples"] + (["~CPU us/event"] if cpu_us else [])
    text = f"### {title}\n\n{benchkit.markdown(headers, rows)}\n\n({total:,} samples)"
    if inside:
        shares = benchkit.markdown(["inclusive: samples inside", "share"], [
            [label, f"{profile.inside(fragment) * 100:.0f}%"]
            for label, fragment in inside.items()])
        text += f"\n\n{shares}"
    return text


def command(script: str) -> str:
    """How this run was started, for the results (without the run's ephemeral broker address,
    which run_all passes in)."""
    args, shown = sys.argv[1:], []
    while args:
        arg = args.pop(0)
        if arg == "--bootstrap":
            args = args[1:]
        elif not arg.startswith("--bootstrap="):
            shown.append(arg)
    return " ".join(["python", f"bench/{script}", *shown])


def section_times(times: dict[str, float]) -> str:
    """One line: wall time of each section of a benchmark, and the total."""
    parts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in times.items())
    return f"Wall time per section: {parts}; total {sum(times.values()):.0f}s."


class Sections:
    """Times the named sections of one benchmark run (printed as they end)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._name, self._t0 = "", 0.0

    def start(self, name: str) -> None:
        self.end()
        self._name, self._t0 = name, time.monotonic()
        print(f"-- {name}", flush=True)

    def end(self) -> None:
        if self._name:
            self.times[self._name] = time.monotonic() - self._t0
            print(f"-- {self._name}: {self.times[self._name]:.0f}s", flush=True)
            self._name = ""

    def line(self) -> str:
        self.end()
        return section_times(self.times)


def add_run_args(p: Any, timeout: float, per: str = "phase") -> None:
    """The options every real-job bench shares: time limit, broker and code under test."""
    p.add_argument("--timeout", type=float, default=timeout, help=f"per {per}, seconds")
    p.add_argument("--bootstrap", help="use this broker instead of starting the embedded one")
    p.add_argument("--code", default="HEAD",
                   help="commit of the product to measure, exported once (default HEAD); "
                        "'worktree' measures the files as they are")


def begin(a: Any) -> tuple[Sections, str]:
    """Put the code under test on the path (import product modules after this), stop cleanly
    on SIGTERM, and open the first section: (sections, machine line)."""
    benchkit.exit_on_sigterm()
    code = benchkit.use_code(a.code)
    sections = Sections()
    machine = benchkit.machine_line(code)
    sections.start("broker and registry")
    return sections, machine
