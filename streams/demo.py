"""`make demo`: the whole product on one machine, stopped cleanly by Ctrl-C or SIGTERM.

Starts, in order: the embedded Apache Kafka broker (data kept under <data_dir>/demo/broker),
the schema registry, the topics, a worker, and the traffic generator at a steady rate; then
prints a live console line every couple of seconds until interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections import Counter
from types import FrameType

from streams.broker.launcher import EmbeddedKafka, free_port
from streams.procs import ChildProcess, fstreams, http_ok
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_demo(rate: int = 200, orders: int = 5_000, seed: int = 7) -> None:
    settings = Settings()
    home = settings.data_dir / "demo"
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    children: list[ChildProcess] = []
    broker = EmbeddedKafka(data_dir=home / "broker", heap="1g")
    try:
        say(f"starting Apache Kafka (data in {home / 'broker'}) ...")
        broker.start()
        bootstrap = broker.bootstrap
        say(f"broker ready at {bootstrap} in {broker.started_in:.1f}s")

        registry_port = free_port()
        registry_url = f"http://127.0.0.1:{registry_port}"
        registry = ChildProcess("registry", [sys.executable, "-m", "registry"], env={
            "FSTREAMS_REGISTRY_BOOTSTRAP_SERVERS": bootstrap,
            "FSTREAMS_REGISTRY_PORT": str(registry_port),
        }, log_path=logs / "registry.log").start()
        children.append(registry)
        registry.wait_until(lambda: http_ok(f"{registry_url}/subjects"), what="serving")
        say(f"schema registry at {registry_url}")

        names = TopicNames.with_prefix(settings.topic_prefix)
        ensure_topics(bootstrap, names, settings.partitions)
        env = {"FSTREAMS_BOOTSTRAP_SERVERS": bootstrap, "FSTREAMS_REGISTRY_URL": registry_url,
               "FSTREAMS_DATA_DIR": str(home)}
        worker = ChildProcess("worker", fstreams("worker"), env=env,
                              log_path=logs / "worker.log").start()
        children.append(worker)
        web = f"http://{settings.web_host}:{settings.web_port}"
        generator = ChildProcess("generator", fstreams(
            "generate", "--orders", str(orders), "--rate", str(rate), "--seed", str(seed),
        ), env=env, log_path=logs / "generator.log").start()
        children.append(generator)
        say(f"worker and generator started; logs in {logs}")
        say(f"operations console: {web}/ (open it in a browser; it follows the traffic live)")
        say(f"query API: {web}/openapi.json   metrics: {web}/metrics   (Ctrl-C stops all)")
        _console(bootstrap, registry_url, names, children)
    except (KeyboardInterrupt, _Stop):
        say("stopping ...")
    finally:
        for child in reversed(children):
            code = child.stop()
            say(f"  {child.name} stopped (exit {code})")
        broker.stop()
        say("  broker stopped; demo data kept in " + str(home))


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _console(bootstrap: str, registry_url: str, names: TopicNames,
             children: list[ChildProcess]) -> None:
    watcher = StateWatcher(bootstrap, registry_url, names)
    try:
        while True:
            for child in children:
                if not child.running:
                    say(f"{child.name} exited with {child.returncode}; see its log")
                    children.remove(child)
                    break
            watcher.poll(2.0)
            say(watcher.summary())
    finally:
        watcher.close()


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "-"


class StateWatcher:
    """Follows the topics for the console: input counts, states by status, dead letters."""

    def __init__(self, bootstrap: str, registry_url: str, names: TopicNames) -> None:
        from confluent_kafka import Consumer

        from streams.schema_source import RegistrySchemaSource
        from streams.serde import WireDecoder

        self.names = names
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fstreams-demo",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([names.fulfillment_states, names.reconciliation_mismatches,
                                 names.sla_alerts])
        source = RegistrySchemaSource(registry_url)
        self.decoders = {
            names.fulfillment_states: WireDecoder.for_record(source, "FulfillmentState"),
            names.reconciliation_mismatches: WireDecoder.for_record(
                source, "ReconciliationMismatch"),
            names.sla_alerts: WireDecoder.for_record(source, "SlaAlert"),
        }
        self.status: dict[bytes, str] = {}
        self.mismatches: dict[str, dict[str, object]] = {}  # mismatch_id -> latest record
        self.alerts: dict[str, dict[str, object]] = {}  # fingerprint -> latest record
        self.states_seen = 0

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, timeout=0.2):
                if msg.error() or msg.value() is None:
                    continue
                with contextlib.suppress(Exception):
                    record = self.decoders[msg.topic()].decode(msg.value())
                    if msg.topic() == self.names.fulfillment_states:
                        self.status[msg.key()] = record["fulfillment_status"]
                        self.states_seen += 1
                    elif msg.topic() == self.names.reconciliation_mismatches:
                        self.mismatches[record["mismatch_id"]] = record
                    else:
                        self.alerts[record["fingerprint"]] = record

    def _high_watermarks(self, topic: str) -> int:
        from confluent_kafka import TopicPartition

        meta = self.consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None:
            return 0
        total = 0
        for p in meta.partitions:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
            total += high - low
        return total

    def summary(self) -> str:
        inputs = " ".join(f"{t}={self._high_watermarks(t)}" for t in self.names.inputs)
        counts = Counter(self.status.values())
        by_status = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        dead = self._high_watermarks(self.names.dead_letters)
        open_by_category = Counter(str(m["category"]) for m in self.mismatches.values()
                                   if m["status"] == "open")
        firing = [a for a in self.alerts.values() if a["state"] == "firing"]
        firing_by_rule = Counter(str(a["rule"]) for a in firing)
        resolved = sum(1 for a in self.alerts.values() if a["state"] == "resolved")
        runbooks = sorted({str(a["runbook_url"]) for a in firing})[:3]
        return (f"in: {inputs} | states emitted {self.states_seen} for {len(self.status)} "
                f"orders | dead letters {dead}\n"
                f"    by fulfillment status: {by_status or '-'}\n"
                f"    open mismatches: {_counts(open_by_category)}\n"
                f"    alerts firing: {_counts(firing_by_rule)}; resolved {resolved}"
                + (f"\n    runbooks: {', '.join(runbooks)}" if runbooks else ""))

    def close(self) -> None:
        self.consumer.close()


if __name__ == "__main__":
    run_demo()
