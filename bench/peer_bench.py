"""The same stateful micro-job, six ways, side by side on one broker and one pre-produced input.

    /work/main/.venv/bin/python bench/peer_bench.py [--events 300000] [--rounds 2]

Input: --events Avro records (~200 B, Confluent framing with a fixed schema id, --keys keys,
4 partitions). Job: decode with fastavro -> per-key state (count, sum, max event time, last
status) -> one JSON output per input. Contenders, each in its own process with a fresh group,
state and output topic, interleaved round by round:

  raw      aiokafka consume + fastavro decode only (the ceiling; no state, no output)
  ck       hand-written confluent-kafka consume -> decode -> dict state -> produce
  quix     Quix Streams 3.28 (stateful apply, its RocksDB state + changelog); runs from a
           bench-private venv because quixstreams pins confluent-kafka<2.13 and pydantic<2.14
  faust    plain Faust 0.15.3: per-event agent, RocksDB table write + `await topic.send()`
  live     the same Faust job on our helpers: take_events + KeyedBatch + OutputSink + OffsetGuard,
           streams.logs logging, streams.worker.Worker (no spinner)
  replay   our replay path's shape: confluent-kafka batch loop, dict state, outputs, then the
           state changelog once per key (like streams/replay.py)

Figures: events/s and CPU us/event inside the measured window (first output seen -> last
output, and for replay also its changelog, on the broker), peak RSS. Medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit  # the bench dir is not a package

SCHEMA = parse_schema({
    "type": "record", "name": "PeerEvent", "namespace": "bench.peer", "fields": [
        {"name": "order_id", "type": "string"}, {"name": "seq", "type": "long"},
        {"name": "event_time", "type": "long"}, {"name": "amount", "type": "long"},
        {"name": "status", "type": "string"}, {"name": "note", "type": "string"}]})
SCHEMA_ID = 1  # fixed: the micro-job needs no registry
HEADER = b"\x00" + SCHEMA_ID.to_bytes(4, "big")
STATUSES = ("placed", "packed", "shipped", "delivered", "returned")
IMPLS = ("raw", "ck", "quix", "faust", "live", "replay")
LABELS = {"raw": "raw ceiling (aiokafka + fastavro)", "ck": "hand-written confluent-kafka",
          "quix": "Quix Streams 3.28.1", "faust": "plain Faust 0.15.3 (per event)",
          "live": "ours, live (Faust + helpers)", "replay": "ours, replay-style batch loop"}
QUIX_PINS = ("quixstreams==3.28.1", "fastavro==1.13.1")


# -- the job, shared by every contender ----------------------------------------------------------
def decode(data: bytes) -> dict[str, Any]:
    fo = BytesIO(data)
    fo.seek(5)  # Confluent header: magic byte + schema id
    record: dict[str, Any] = schemaless_reader(fo, SCHEMA, None)
    return record


def fold(state: dict[str, Any] | None, rec: dict[str, Any]) -> dict[str, Any]:
    if state is None:
        state = {"count": 0, "sum": 0, "max_time": 0, "status": ""}
    state["count"] += 1
    state["sum"] += rec["amount"]
    if rec["event_time"] > state["max_time"]:
        state["max_time"] = rec["event_time"]
    state["status"] = rec["status"]
    return state


def dumps(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


# -- contenders (child mode) ----------------------------------------------------------------------
def child_raw(a: argparse.Namespace) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def main() -> None:
        consumer = AIOKafkaConsumer(a.input, bootstrap_servers=a.bootstrap, group_id=a.group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        count, t0, cpu0 = 0, 0.0, 0.0
        try:
            while count < a.events:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                if batches and not count:
                    t0, cpu0 = time.monotonic(), benchkit.cpu_now()
                for records in batches.values():
                    for msg in records:
                        decode(msg.value)
                    count += len(records)
        finally:
            await consumer.stop()
        benchkit.self_report(a.report, count, t0, time.monotonic(), cpu0)

    asyncio.run(main())


def child_ck(a: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                         "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5,
                         "compression.type": "lz4"})
    consumer.subscribe([a.input])
    states: dict[bytes, dict[str, Any]] = {}
    while True:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error():
                continue
            key = msg.key()
            state = states[key] = fold(states.get(key), decode(msg.value()))
            while True:
                try:
                    producer.produce(a.output, dumps(state), key)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)


def child_quix(a: argparse.Namespace) -> None:
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    class AvroDeserializer(Deserializer):
        def __call__(self, value: bytes, ctx: Any) -> dict[str, Any]:
            return decode(value)

    app = Application(broker_address=a.bootstrap, consumer_group=a.group,
                      auto_offset_reset="earliest", state_dir=a.state_dir, loglevel="WARNING")
    source = app.topic(a.input, key_deserializer="bytes", value_deserializer=AvroDeserializer())
    sink = app.topic(a.output, key_serializer="bytes", value_serializer="json")

    def update(rec: dict[str, Any], state: Any) -> dict[str, Any]:
        new = fold(state.get("s"), rec)
        state.set("s", new)
        return new

    sdf = app.dataframe(source)
    sdf = sdf.apply(update, stateful=True)
    sdf.to_topic(sink)
    app.run()


def _faust_app(a: argparse.Namespace) -> Any:
    import faust

    from streams.broker.launcher import free_port

    # Faust's defaults, except what any deployment sets: broker, RocksDB store, partitions.
    return faust.App(a.group, broker=f"kafka://{a.bootstrap}", store="rocksdb://",
                     datadir=a.state_dir, topic_partitions=4, autodiscover=False,
                     consumer_auto_offset_reset="earliest", web_port=free_port())


def child_faust(a: argparse.Namespace) -> None:
    import faust

    app = _faust_app(a)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
           "value_serializer": "raw", "partitions": 4}
    source, sink = app.topic(a.input, **raw), app.topic(a.output, **raw)
    table = app.Table("peer-state", key_type=bytes, value_type=bytes, partitions=4)

    @app.agent(source, name="peer")
    async def job(stream: Any) -> None:
        async for key, value in stream.items():
            raw_state = table.get(key)
            state = fold(None if raw_state is None else json.loads(raw_state), decode(value))
            out = dumps(state)
            table[key] = out
            await sink.send(key=key, value=out)

    # `faust worker -l info`, the documented way (below WARN the stock spinner is off).
    faust.Worker(app, loglevel="info").execute_from_commandline()


def child_live(a: argparse.Namespace) -> None:
    from streams import batching, logs
    from streams.app import create_app
    from streams.batching import KeyedBatch
    from streams.broker.launcher import free_port
    from streams.settings import Settings
    from streams.sink import OffsetGuard, OutputSink
    from streams.worker import Worker

    settings = Settings(bootstrap_servers=a.bootstrap, app_id=a.group, worker_id=a.group,
                        data_dir=Path(a.state_dir), web_port=free_port(), partitions=4)
    logs.configure(settings.log_level, settings.log_format)
    pipeline = create_app(settings)
    app = pipeline.app
    table = pipeline.bytes_table("peer-state")
    source = pipeline.topic(a.input)
    sink = OutputSink(settings.bootstrap_servers, client_id=f"{a.group}-outputs")
    app.sensors.add(OffsetGuard(sink))
    # Since c3ef604 the agent writes table changelogs through the sink (TableWriter); older
    # commits (--code) wrote them through Faust's producer.
    writer = batching.TableWriter(table, sink) if hasattr(batching, "TableWriter") else None

    @app.on_before_shutdown.connect
    async def _flush(app: Any, **kwargs: Any) -> None:
        sink.close()

    @app.agent(source, name="peer")
    async def job(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events,
                                               settings.batch_timeout_s):
            batch: KeyedBatch[dict[str, Any]] = (KeyedBatch(table, writer) if writer
                                                  else KeyedBatch(table))
            for event in events:
                msg = event.message
                state = fold(batch.get(msg.key, event), decode(msg.value))
                batch.put(msg.key, state, event)
                sink.produce(a.output, msg.key, dumps(state))
            batch.flush()
            sink.poll()
            if writer is not None:
                writer.checkpoint()

    Worker(app, settings).execute_from_commandline()


def child_replay(a: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    # The same client settings as streams/replay.py.
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                         "enable.auto.commit": False, "enable.partition.eof": False,
                         "fetch.max.bytes": 64 * 1024 * 1024, "queued.min.messages": 200_000})
    producer = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20, "batch.num.messages": 20_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    parts = consumer.list_topics(a.input, timeout=10).topics[a.input].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(a.input, p), 10)[1] for p in parts}
    remaining = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(a.input, p, 0) for p in remaining])
    states: dict[bytes, dict[str, Any]] = {}
    touched: dict[bytes, int] = {}
    produce = producer.produce
    while remaining:
        for msg in consumer.consume(20_000, timeout=1.0):
            partition, offset = msg.partition(), msg.offset()
            if offset == ends[partition] - 1:
                remaining.discard(partition)
            key = msg.key()
            state = states.get(key)
            if state is None:
                state = states[key] = fold(None, decode(msg.value()))
            else:
                fold(state, decode(msg.value()))
            touched[key] = partition
            while True:
                try:
                    produce(a.output, dumps(state), key)
                    break
                except BufferError:
                    producer.poll(0.5)
        producer.poll(0)
    for key, partition in touched.items():  # the table's changelog, once per key
        while True:
            try:
                produce(a.changelog, dumps(states[key]), key, partition=partition)
                break
            except BufferError:
                producer.poll(0.5)
    producer.flush(60)
    consumer.commit(offsets=[TopicPartition(a.input, p, end) for p, end in ends.items()],
                    asynchronous=False)
    consumer.close()
    time.sleep(3600)  # the parent measures on the broker, then stops us


CHILDREN = {"raw": child_raw, "ck": child_ck, "quix": child_quix, "faust": child_faust,
            "live": child_live, "replay": child_replay}


# -- parent ---------------------------------------------------------------------------------------
def produce_input(bootstrap: str, topic: str, events: int, keys: int,
                  seed: int) -> tuple[int, float]:
    """Pre-produce the input; returns the number of distinct keys and the mean record size."""
    from confluent_kafka import Producer

    rng = random.Random(seed)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    used: set[int] = set()
    size = 0
    base = 1_767_225_600_000
    for i in range(events):
        k = rng.randrange(keys)
        used.add(k)
        rec = {"order_id": f"order-{k:07d}", "seq": i, "event_time": base + i * 7 - k % 5000,
               "amount": rng.randrange(100, 100_000), "status": STATUSES[i % len(STATUSES)],
               "note": f"{rng.getrandbits(600):0150x}"}
        buf = BytesIO()
        buf.write(HEADER)
        schemaless_writer(buf, SCHEMA, rec)
        size += buf.tell()
        while True:
            try:
                producer.produce(topic, buf.getvalue(), rec["order_id"].encode())
                break
            except BufferError:
                producer.poll(0.2)
    if producer.flush(60):
        raise RuntimeError("input was not fully produced")
    return len(used), size / max(events, 1)


def quix_python(path: Path) -> Path:
    """The bench-private interpreter for Quix (created once with exact pins)."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} with {' '.join(QUIX_PINS)} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *QUIX_PINS], check=True)
    return python


def run_one(impl: str, a: argparse.Namespace, topic: str, keys: int, offsets: benchkit.Offsets,
            tag: str) -> benchkit.Run:
    run_id = f"peer-{impl}-{tag}-{uuid.uuid4().hex[:6]}"
    out, changelog = f"{run_id}-out", f"{run_id}-changelog"
    state_dir = benchkit.WORK / "state" / run_id
    state_dir.mkdir(parents=True, exist_ok=True)
    report = state_dir / "report.json"
    if impl not in ("raw",):
        benchkit.create_topic(a.bootstrap, out, 4)
    if impl == "replay":
        benchkit.create_topic(a.bootstrap, changelog, 4, compact=True)
    python = str(quix_python(a.quix_venv)) if impl == "quix" else sys.executable
    argv = [python, __file__, "--child", impl, "--bootstrap", a.bootstrap, "--input", topic,
            "--output", out, "--changelog", changelog, "--group", run_id,
            "--state-dir", str(state_dir), "--report", str(report), "--events", str(a.events)]
    child = benchkit.Child(run_id, argv)
    if impl == "raw":
        data = benchkit.wait_report(child, report, a.timeout)
        return benchkit.Run(impl, int(data["events"]), data["seconds"], data["cpu_s"],
                            data["rss_mb"])
    done = (lambda: offsets.end(changelog) >= keys) if impl == "replay" else None
    run = benchkit.watch(child, lambda: offsets.end(out), a.events, done, a.timeout,
                         a.max_seconds)
    run.name = impl
    return run


def report(a: argparse.Namespace, runs: dict[str, list[benchkit.Run]], setup: str) -> str:
    med, table = benchkit.results_table(runs, LABELS, "raw", "vs raw ceiling")

    def ratio(x: str, y: str, target: float) -> list[object]:
        if x not in med or y not in med:
            return [f"{x}/{y}", "-", "-", f">= {target}", "not run"]
        speed = med[x][0] / med[y][0]
        cpu = med[y][1] / med[x][1]
        return [f"{LABELS[x]} / {LABELS[y]}", f"{speed:.2f}", f"{cpu:.2f}", f">= {target}",
                "met" if speed >= target else "MISSED"]

    ratios = benchkit.markdown(
        ["ratio", "events/s", "CPU efficiency (inverse us/event)", "target", ""],
        [ratio("live", "faust", 1.5), ratio("replay", "quix", 1.0)])
    return (f"## peer_bench: one stateful micro-job, six ways\n\n{setup}\n\n{table}\n\n{ratios}\n"
            f"\nCommand: `{' '.join(['python', 'bench/peer_bench.py', *sys.argv[1:]])}`")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=300_000, help="input records (default 300000)")
    p.add_argument("--keys", type=int, default=50_000, help="distinct keys (default 50000)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"subset of {','.join(IMPLS)}")
    p.add_argument("--bootstrap", help="use this broker instead of starting the embedded one")
    p.add_argument("--code", default="HEAD",
                   help="commit of the product to measure, exported once (default HEAD); "
                        "'worktree' measures the files as they are")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="cap of one run's measured window; slower contenders are measured at "
                        "their steady rate over this long (default 30; 0 = no cap)")
    p.add_argument("--timeout", type=float, default=300.0, help="per run, seconds")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quix-venv", type=Path, default=benchkit.WORK / "quix-venv",
                   help="venv for Quix Streams (created with exact pins if missing)")
    p.add_argument("--quick", action="store_true", help="100000 events, 1 round")
    # child mode (internal)
    p.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    for name in ("--input", "--output", "--changelog", "--group", "--state-dir", "--report"):
        p.add_argument(name, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        CHILDREN[a.child](a)
        return
    if a.quick:
        a.events, a.rounds, a.max_seconds = 100_000, 1, 20.0
    benchkit.exit_on_sigterm()
    code = benchkit.use_code(a.code)
    impls = [i.strip() for i in a.impls.split(",") if i.strip()]
    if unknown := set(impls) - set(IMPLS):
        p.error(f"unknown implementations: {', '.join(sorted(unknown))}")
    if "quix" in impls:
        quix_python(a.quix_venv)
    started, machine = time.monotonic(), benchkit.machine_line(code)
    with benchkit.broker(a.bootstrap) as bootstrap:
        a.bootstrap = bootstrap
        topic = f"peer-in-{uuid.uuid4().hex[:6]}"
        benchkit.create_topic(bootstrap, topic, 4)
        keys, mean_size = produce_input(bootstrap, topic, a.events, a.keys, a.seed)
        offsets = benchkit.Offsets(bootstrap)
        size = offsets.end(topic)
        print(f"input: {size:,} records, {keys:,} keys, 4 partitions on {bootstrap}", flush=True)
        runs: dict[str, list[benchkit.Run]] = {impl: [] for impl in impls}
        for rnd in range(1, a.rounds + 1):
            for impl in impls:  # interleaved: A B C ... A B C ...
                run = run_one(impl, a, topic, keys, offsets, f"r{rnd}")
                runs[impl].append(run)
                print(f"round {rnd} {impl:7s} {run.rate:>10,.0f} events/s {run.cpu_us:7.1f} "
                      f"us/event {run.rss_mb:6.0f} MB ({run.events:,} events in "
                      f"{run.seconds:.1f}s{', capped' if run.capped else ''})", flush=True)
        offsets.close()
    setup = (f"{size:,} Avro records (mean {mean_size:.0f} B), {keys:,} keys, 4 partitions, "
             f"{a.rounds} interleaved round(s), medians; {machine}; "
             f"total {time.monotonic() - started:.0f}s. Window: first output seen on the "
             f"broker -> all {a.events:,} outputs there (replay: and its changelog), capped at "
             f"{a.max_seconds:.0f}s. CPU = user+sys of the contender's process (all threads) "
             "inside the window.")
    benchkit.publish("peer_bench", report(a, runs, setup))


if __name__ == "__main__":
    main()
