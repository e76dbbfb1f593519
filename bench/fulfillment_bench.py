"""The real job, side by side: raw ceiling, plain Faust, our live worker, our bulk replay.

    /work/main/.venv/bin/python bench/fulfillment_bench.py [--orders 5000] [--rounds 2]

Pre-produces generated traffic (`streams.generator`, --orders orders, ~12 events each, the
generator's bad records included) through the real registry into the four input topics, then
measures on that same input, interleaved round by round, each contender in its own process:

  ceiling  aiokafka consuming the four topics + `streams.serde.WireDecoder`, nothing else
  faust    a plain per-event Faust agent on the four topics: decode, a trivial table update
           (count per order) and one `await topic.send()` per event
  live     a real `fstreams worker` (python -m streams.cli worker) from empty state, fresh app
           id; done when its group's committed offsets reach the input end
  replay   `Replayer(settings).run(ReplayPlan(start="beginning", rebuild=True))`, fresh app id,
           in the product's default job processes (or --jobs); CPU includes the jobs'

Window: ceiling and replay time themselves; faust from its first output to one output per
input; live from its group's first commit to the commit of the input end (commits every 1 s,
so the window can be up to ~1 s long at the end: a pessimistic bias for live).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit  # the bench dir is not a package
import jobkit

IMPLS = ("ceiling", "faust", "live", "replay")
LABELS = {"ceiling": "raw ceiling (aiokafka + WireDecoder)",
          "faust": "plain Faust agent (per event, table + send)",
          "live": "ours, live `fstreams worker`", "replay": "ours, bulk replay (rebuild)"}


def _settings(a: argparse.Namespace) -> Any:
    from streams.broker.launcher import free_port
    from streams.settings import Settings

    return Settings(bootstrap_servers=a.bootstrap, registry_url=a.registry,
                    topic_prefix=a.prefix, app_id=a.group, worker_id=a.group,
                    data_dir=Path(a.state_dir), partitions=4, web_port=free_port())


def _decoders(a: argparse.Namespace) -> dict[str, Any]:
    from streams.schema_source import RegistrySchemaSource
    from streams.serde import WireDecoder
    from streams.topics import TopicNames

    names = TopicNames.with_prefix(a.prefix)
    source = RegistrySchemaSource(a.registry)
    return {t: WireDecoder.for_record(source, names.record_of(t)) for t in names.inputs}


# -- contenders (child mode) ----------------------------------------------------------------------
def child_ceiling(a: argparse.Namespace) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    decoders = _decoders(a)

    async def main() -> None:
        consumer = AIOKafkaConsumer(*decoders, bootstrap_servers=a.bootstrap, group_id=a.group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        count, t0, cpu0 = 0, 0.0, 0.0
        try:
            while count < a.events:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                if batches and not count:
                    t0, cpu0 = time.monotonic(), benchkit.cpu_now()
                for tp, records in batches.items():
                    decode = decoders[tp.topic].decode
                    for msg in records:
                        try:  # noqa: SIM105 - suppress() would cost an object per record
                            decode(msg.value)
                        except Exception:  # the generator's bad records: counted, not decoded
                            pass
                    count += len(records)
        finally:
            await consumer.stop()
        benchkit.self_report(a.report, count, t0, time.monotonic(), cpu0)

    asyncio.run(main())


def child_faust(a: argparse.Namespace) -> None:
    import faust

    from streams.broker.launcher import free_port

    decoders = _decoders(a)
    # Faust's defaults, except what any deployment sets: broker, RocksDB store, partitions.
    app = faust.App(a.group, broker=f"kafka://{a.bootstrap}", store="rocksdb://",
                    datadir=a.state_dir, topic_partitions=4, autodiscover=False,
                    consumer_auto_offset_reset="earliest", web_port=free_port())
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
           "value_serializer": "raw", "partitions": 4}
    source, sink = app.topic(*decoders, **raw), app.topic(a.output, **raw)
    table = app.Table("counts", key_type=bytes, value_type=bytes, partitions=4)

    @app.agent(source, name="plain")
    async def plain(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:  # noqa: SIM105 - suppress() would cost an object per record
                decoders[msg.topic].decode(msg.value)
            except Exception:
                pass  # a bad record still gets its one output below
            count = int(table.get(msg.key) or b"0") + 1
            table[msg.key] = b"%d" % count
            await sink.send(key=msg.key, value=b"%d" % count)

    faust.Worker(app, loglevel="info").execute_from_commandline()


def child_replay(a: argparse.Namespace) -> None:
    """The replay as `fstreams replay` runs it: its default job processes unless --jobs. CPU
    and memory are this process's and its jobs' together (they are reaped by the end)."""
    import json
    import resource

    from streams import logs
    from streams.replay import Replayer, ReplayPlan

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    logs.configure("WARNING", "text")
    jobs = {} if a.jobs is None else {"jobs": a.jobs}  # older commits have no jobs
    replayer = Replayer(_settings(a), **jobs)
    cpu0 = cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN)
    summary = replayer.run(ReplayPlan(start="beginning", rebuild=True))
    replayer.close()
    cpu_s = cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN) - cpu0
    # Peak RSS: this process's (job 0 runs in it) plus, per other job, the largest child's
    # (they peak at about the same).
    children = getattr(summary, "jobs", 1) - 1
    rss_kb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
              + children * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    Path(a.report).write_text(json.dumps({"events": summary.events, "seconds": summary.seconds,
                                          "cpu_s": cpu_s, "rss_mb": rss_kb / 1024}))
    print(summary.render(), flush=True)


CHILDREN = {"ceiling": child_ceiling, "faust": child_faust, "replay": child_replay}


# -- parent ---------------------------------------------------------------------------------------
def live_worker(a: argparse.Namespace, run_id: str, state_dir: Path) -> jobkit.Worker:
    """A real `fstreams worker` of a fresh app on the bench's input topics."""
    return jobkit.start_worker(a.bootstrap, a.registry, a.prefix, run_id, state_dir,
                               worker_id=run_id, log_name=run_id)


def consumed(port: int) -> int:
    return jobkit.counters(port).get("fstreams_events_consumed_total", 0)


# Where a sample's time belongs: the leaf-most frame matching one of these (in this order).
COMPONENTS = (
    ("streams/serde.py", "Avro encode/decode (streams/serde.py, fastavro)"),
    ("fastavro", "Avro encode/decode (streams/serde.py, fastavro)"),
    ("streams/sink.py", "output sink (librdkafka produce/poll/flush)"),
    ("streams/timers.py", "timers table (streams/timers.py)"),
    ("faust/stores", "RocksDB store (faust/stores)"),
    ("faust/transport/producer", "Faust producer: table changelogs via aiokafka"),
    ("aiokafka/producer", "Faust producer: table changelogs via aiokafka"),
    ("streams/batching.py", "KeyedBatch (state JSON, table get/set)"),
    ("faust/tables", "Faust table bookkeeping (faust/tables)"),
    ("tables/", "domain: fold, evaluate, SLA, reconciliation (tables/)"),
    ("aiokafka/", "aiokafka consumer / network"),
    ("faust/", "Faust stream/consumer machinery"),
)


def component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for pattern, name in COMPONENTS:
            if pattern in frame:
                return name
    return "event loop and everything else"


def profile_live(a: argparse.Namespace) -> str:
    """One extra, unmeasured live worker sampled by py-spy: where its CPU goes, per event."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "_profile skipped: py-spy is not installed (pip install py-spy==0.4.1)_"
    run_id = f"fb-profile-{uuid.uuid4().hex[:6]}"
    state_dir = benchkit.WORK / "state" / run_id
    state_dir.mkdir(parents=True, exist_ok=True)
    raw = state_dir / "py-spy.raw"
    worker = live_worker(a, run_id, state_dir)
    child, port = worker.child, worker.port
    try:
        deadline = time.monotonic() + a.timeout
        while consumed(port) == 0:  # profile the steady state only
            if not child.running or time.monotonic() > deadline:
                raise child.fail("made no progress")
            time.sleep(0.2)
        c0, cpu0 = consumed(port), benchkit.proc_cpu_seconds(child.proc.pid)
        subprocess.run([spy, "record", "-p", str(child.proc.pid), "-d", str(int(a.profile)),
                        "-r", "100", "-f", "raw", "-o", str(raw), "--nonblocking"],
                       check=True, capture_output=True)
        events = consumed(port) - c0
        final = jobkit.counters(port)
        cpu_us = (benchkit.proc_cpu_seconds(child.proc.pid) - cpu0) * 1e6 / max(events, 1)
    finally:
        child.stop()
    if a.profile_raw:  # for a closer look (e.g. per agent) than the tables below
        shutil.copyfile(raw, a.profile_raw)
    own: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():  # frames may hold any bytes
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():  # py-spy's notes (e.g. about paths) are not samples
            continue
        frames = stack.split(";")
        func, _, where = frames[-1].partition(" (")
        own[f"{func} ({where.rsplit(':', 1)[0]})"] += int(n)  # per function, not per line
        parts[component(frames)] += int(n)
        total += int(n)
    total = max(total, 1)

    def rows(counter: collections.Counter[str], code: bool) -> list[list[str]]:
        return [[f"`{f}`" if code else f, f"{n / total * 100:.1f}%", f"{n / total * cpu_us:.0f}"]
                for f, n in counter.most_common(10)]
    seen = max(final.pop("fstreams_events_consumed_total", 0), 1)
    per_event = ", ".join(f"{name[9:-6]} {n / seen:.2f}" for name, n in sorted(final.items()))
    return (f"### live worker profile (py-spy, {a.profile:.0f}s, {events:,} events consumed "
            f"in the window, {cpu_us:.0f} CPU us/event)\n\n"
            + benchkit.markdown(["component", "share of samples", "~CPU us/event"],
                                rows(parts, False)) + "\n\n"
            + benchkit.markdown(["function (self time)", "share of samples", "~CPU us/event"],
                                rows(own, True))
            + f"\n\nWorker counters per input event: {per_event or 'none'}.")


def run_one(impl: str, a: argparse.Namespace, total: int, inputs: tuple[str, ...],
            offsets: benchkit.Offsets, tag: str) -> benchkit.Run:
    run_id = f"fb-{impl}-{tag}-{uuid.uuid4().hex[:6]}"
    state_dir = benchkit.WORK / "state" / run_id
    state_dir.mkdir(parents=True, exist_ok=True)
    report, out = state_dir / "report.json", f"{run_id}-out"
    common = ["--bootstrap", a.bootstrap, "--registry", a.registry, "--prefix", a.prefix,
              "--group", run_id, "--state-dir", str(state_dir), "--events", str(total)]
    if impl == "live":
        child = live_worker(a, run_id, state_dir).child
        run = benchkit.watch(child, lambda: offsets.committed(run_id, inputs), total,
                             timeout=a.timeout, max_seconds=a.max_seconds, interval=0.1)
    elif impl == "faust":
        benchkit.create_topic(a.bootstrap, out, 4)
        child = benchkit.Child(run_id, [sys.executable, __file__, "--child", impl, *common,
                                        "--output", out])
        run = benchkit.watch(child, lambda: offsets.end(out), total, timeout=a.timeout,
                             max_seconds=a.max_seconds)
    else:
        jobs = ["--jobs", str(a.jobs)] if impl == "replay" and a.jobs is not None else []
        child = benchkit.Child(run_id, [sys.executable, __file__, "--child", impl, *common,
                                        "--report", str(report), *jobs])
        data = benchkit.wait_report(child, report, a.timeout)
        run = benchkit.Run(impl, int(data["events"]), data["seconds"], data["cpu_s"],
                           data["rss_mb"])
    run.name = impl
    return run


def report(a: argparse.Namespace, runs: dict[str, list[benchkit.Run]], setup: str) -> str:
    med, table = benchkit.results_table(runs, LABELS, "ceiling", "vs ceiling")
    ceiling = med.get("ceiling", (0.0, 0.0, 0.0))[0]

    def get(impl: str, i: int = 0) -> float:
        return med[impl][i] if impl in med else 0.0

    def verdict(value: float, target: float) -> str:
        return "met" if value >= target else "MISSED"

    live_faust = get("live") / get("faust") if get("faust") else 0.0
    live_cpu = get("faust", 1) / get("live", 1) if get("live", 1) else 0.0
    ratios = benchkit.markdown(["figure", "value", "target", ""], [
        ["live / plain Faust, events/s", f"{live_faust:.2f}", ">= 1.5",
         verdict(live_faust, 1.5)],
        ["live / plain Faust, CPU efficiency", f"{live_cpu:.2f}", "-", ""],
        ["replay events/s", f"{get('replay'):,.0f}", ">= 30,000",
         verdict(get("replay"), 30_000)],
        ["live / ceiling, events/s", f"{get('live') / ceiling:.2f}" if ceiling else "-", "-",
         ""],
        ["replay / ceiling, events/s", f"{get('replay') / ceiling:.2f}" if ceiling else "-",
         "-", ""]])
    return (f"## fulfillment_bench: the real job\n\n{setup}\n\n{table}\n\n{ratios}\n\n"
            f"Command: `{' '.join(['python', 'bench/fulfillment_bench.py', *sys.argv[1:]])}`")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=5000, help="generated orders (~12 events each)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"subset of {','.join(IMPLS)}")
    p.add_argument("--max-seconds", type=float, default=40.0,
                   help="cap of a watched run's window (faust, live); 0 = no cap (default 40)")
    p.add_argument("--timeout", type=float, default=300.0, help="per run, seconds")
    p.add_argument("--bootstrap", help="use this broker instead of starting the embedded one")
    p.add_argument("--code", default="HEAD",
                   help="commit of the product to measure, exported once (default HEAD); "
                        "'worktree' measures the files as they are")
    p.add_argument("--profile", type=float, default=20.0,
                   help="seconds of py-spy on one extra live worker after the rounds (0 = off)")
    p.add_argument("--profile-raw", type=Path, default=None,
                   help="also keep the profile's raw py-spy samples (folded stacks) here")
    p.add_argument("--quick", action="store_true", help="2000 orders, 1 round")
    p.add_argument("--jobs", type=int, default=None,
                   help="replay: its job processes (default: the product's, as `fstreams "
                        "replay` chooses; 1 = in one process)")
    # child mode (internal)
    p.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    for name in ("--registry", "--prefix", "--group", "--state-dir", "--report", "--output"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        CHILDREN[a.child](a)
        return
    if a.quick:
        a.orders, a.rounds = 2000, 1
    impls = [i.strip() for i in a.impls.split(",") if i.strip()]
    if unknown := set(impls) - set(IMPLS):
        p.error(f"unknown implementations: {', '.join(sorted(unknown))}")
    benchkit.exit_on_sigterm()
    code = benchkit.use_code(a.code)
    from streams.generator import GeneratorConfig, generate
    from streams.generator.output import produce_to_kafka
    from streams.topics import TopicNames

    started, machine = time.monotonic(), benchkit.machine_line(code)
    with benchkit.broker(a.bootstrap) as bootstrap:
        a.bootstrap = bootstrap
        registry, a.registry = jobkit.start_registry(bootstrap)
        try:
            a.prefix = f"fb-{uuid.uuid4().hex[:6]}-"
            inputs = TopicNames.with_prefix(a.prefix).inputs
            generated = generate(GeneratorConfig(orders=a.orders, seed=a.seed))
            produce_to_kafka(generated.events, bootstrap=bootstrap, registry_url=a.registry,
                             topic_prefix=a.prefix, partitions=4)
            offsets = benchkit.Offsets(bootstrap)
            total = sum(offsets.end(t) for t in inputs)
            print(f"input: {total:,} events of {a.orders:,} orders on {bootstrap}", flush=True)
            runs: dict[str, list[benchkit.Run]] = {impl: [] for impl in impls}
            for rnd in range(1, a.rounds + 1):
                for impl in impls:  # interleaved: A B C D A B C D ...
                    run = run_one(impl, a, total, inputs, offsets, f"r{rnd}")
                    runs[impl].append(run)
                    print(f"round {rnd} {impl:8s} {run.rate:>10,.0f} events/s "
                          f"{run.cpu_us:7.1f} us/event {run.rss_mb:6.0f} MB ({run.events:,} "
                          f"events in {run.seconds:.1f}s{', capped' if run.capped else ''})",
                          flush=True)
            profile = profile_live(a) if a.profile > 0 else ""
            offsets.close()
        finally:
            registry.stop()
    setup = (f"{total:,} generated events ({a.orders:,} orders, seed {a.seed}, bad records "
             f"included), 4 partitions, {a.rounds} interleaved round(s), medians; {machine}; "
             f"total {time.monotonic() - started:.0f}s. Watched windows capped at "
             f"{a.max_seconds:.0f}s. CPU = user+sys of the contender's process (all threads) "
             "inside its window.")
    benchkit.publish("fulfillment_bench", report(a, runs, setup) + f"\n\n{profile}".rstrip())


if __name__ == "__main__":
    main()
