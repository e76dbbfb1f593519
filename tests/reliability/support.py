"""Helpers shared by the reliability tests: traffic, committed progress, emitted versions."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from streams.broker.launcher import free_port
from streams.broker.libs import libs_dir
from streams.generator.emit import GeneratedEvent
from streams.generator.output import produce_to_kafka
from streams.procs import ChildProcess, fstreams, http_ok
from streams.settings import Settings
from streams.topics import ORDER_STATE_TABLE, TopicNames, changelog_topic
from tables import fulfillment
from tests.agents.conftest import worker_env
from tests.agents.oracle import live_records, oracle_records, verdicts
from tests.agents.test_fulfillment_pipeline import emitted_states
from tests.kafka_helpers import Process, committed_offsets, end_offsets, read_topic


def names_of(settings: Settings) -> TopicNames:
    return TopicNames.with_prefix(settings.topic_prefix)


def produce(settings: Settings, events: Sequence[GeneratedEvent],
            rate: float | None = None) -> None:
    """Through the product's producer SDK (paced to `rate` events/s when given)."""
    delivered = produce_to_kafka(events, bootstrap=settings.bootstrap_servers,
                                 registry_url=settings.registry_url,
                                 topic_prefix=settings.topic_prefix,
                                 partitions=settings.partitions, rate=rate)
    assert delivered == len(events), f"{delivered} of {len(events)} events delivered"


class Feeder(threading.Thread):
    """Produces `events` paced in the background; `join()` re-raises what went wrong."""

    def __init__(self, settings: Settings, events: Sequence[GeneratedEvent],
                 rate: float) -> None:
        super().__init__(name="feeder", daemon=True)
        self.settings, self.events, self.rate = settings, events, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            produce(self.settings, self.events, self.rate)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float | None = 120.0) -> None:
        super().join(timeout)
        assert not self.is_alive(), "the feeder did not finish"
        if self.error is not None:
            raise self.error


def readyz(port: int) -> int:
    """The HTTP status of the worker's /readyz on `port` (0 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def events_consumed(port: int) -> float:
    """Input events the worker on `port` has consumed, from its /metrics (0 when down)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("fstreams_events_consumed_total{"))


def input_progress(settings: Settings) -> tuple[int, int]:
    """(input records committed by the app's group, input records in the topics)."""
    names = names_of(settings)
    ends = end_offsets(settings.bootstrap_servers, names.inputs)
    committed = committed_offsets(settings.bootstrap_servers, settings.app_id)
    return sum(min(committed.get(tp, 0), end) for tp, end in ends.items()), sum(ends.values())


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0,
             workers: Sequence[Process] = ()) -> None:
    """Poll `check` until true (bounded); fail at once if a worker dies meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for worker in workers:
            if not worker.running:
                raise RuntimeError(f"{worker.name} died while waiting for {what}"
                                   f"{worker._log_hint()}")
        time.sleep(0.1)
    raise TimeoutError(f"not {what} within {timeout}s")


def assert_live_equals_oracle(settings: Settings) -> dict[str, dict[str, Any]]:
    """The live table (as its changelog holds it) has the pure oracle's verdicts."""
    live = verdicts(live_records(settings))
    oracle = verdicts(oracle_records(settings))
    differ = sorted(k for k in set(live) | set(oracle) if live.get(k) != oracle.get(k))
    shown = "; ".join(f"{k}: live {live.get(k)} oracle {oracle.get(k)}, changelog writes "
                      f"(offset, version): {changelog_history(settings, k)}, input records: "
                      f"{input_positions(settings, k)}" for k in differ[:3])
    assert not differ, f"{len(differ)} of {len(oracle)} orders differ from the oracle: {shown}"
    return live


def input_positions(settings: Settings, order_id: str) -> list[str]:
    """Where `order_id`'s input records are: topic[partition]@offset (a lost update's
    suspects, to match against the workers' logs)."""
    return [f"{topic.rsplit('-', 1)[-1]}[{partition}]@{offset}"
            for topic in names_of(settings).inputs
            for partition, offset, key, _ in read_topic(settings.bootstrap_servers, topic)
            if key == order_id.encode()]


def changelog_history(settings: Settings, order_id: str) -> list[tuple[int, int | None]]:
    """(offset, fold version) of every write of `order_id` to the order table's changelog."""
    topic = changelog_topic(settings.app_id, ORDER_STATE_TABLE)
    return [(offset, None if value is None else json.loads(value)["f"]["v"])
            for _, offset, key, value in read_topic(settings.bootstrap_servers, topic)
            if key == order_id.encode()]


def assert_duplicates_detectable(settings: Settings, live: dict[str, dict[str, Any]]) -> int:
    """Every order's emitted FulfillmentStates, read back from the topic: a repeated
    (order_id, version) carries exactly the same content (a detectable duplicate), versions
    have no gap, and the highest version is the table's canonical state (no lost update).
    Returns how many duplicates were seen."""
    duplicates = 0
    problems: list[str] = []
    emitted = emitted_states(settings, names_of(settings))
    assert set(emitted) == {k for k, v in live.items() if v["state"] is not None}
    for order_id, states in emitted.items():
        by_version: dict[int, dict[str, Any]] = {}
        for state in states:
            seen = by_version.setdefault(state["version"], state)
            if seen is not state:
                duplicates += 1
                differs = {k: (seen[k], state[k]) for k in state if seen[k] != state[k]}
                if differs:
                    problems.append(f"{order_id} v{state['version']} re-emitted with other "
                                    f"content (first, again): {differs}")
        versions = [state["version"] for state in states]
        if sorted(by_version) != list(range(1, max(by_version) + 1)):
            problems.append(f"{order_id}: version gap, emitted in this order: {versions}; "
                            f"changelog writes (offset, version): "
                            f"{changelog_history(settings, order_id)}")
        last = by_version[max(by_version)]
        if fulfillment.canonical_view(last) != live[order_id]["state"]:
            problems.append(f"{order_id}: last version {max(by_version)} is not the table's")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:8])
    return duplicates


class RegistryProcess:
    """A dedicated `python -m registry` on the given broker: own `_schemas` topic and port,
    so it can be stopped and started again on both without touching the session registry."""

    def __init__(self, bootstrap: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.child = ChildProcess("registry", [sys.executable, "-m", "registry"], env={
            "FSTREAMS_REGISTRY_BOOTSTRAP_SERVERS": bootstrap,
            "FSTREAMS_REGISTRY_PORT": str(self.port),
            "FSTREAMS_REGISTRY_TOPIC": f"_schemas-{uuid.uuid4().hex[:8]}",
        }, log_path=log_path)

    def start(self) -> RegistryProcess:
        self.child.start()
        self.child.wait_until(lambda: http_ok(f"{self.url}/_ready"), timeout=90, what="ready")
        return self

    def stop(self) -> None:
        self.child.stop()


def worker_process(settings: Settings, worker_id: str, log_path: Path,
                   **env: str) -> ChildProcess:
    """A started `fstreams worker` of `settings`' application (as tests/agents starts them)."""
    return ChildProcess(worker_id, fstreams("worker"), env=worker_env(settings, worker_id, **env),
                        log_path=log_path).start()


def consumer_quota(bootstrap: str, client_id: str, bytes_per_second: int | None) -> None:
    """Set (or, with None, remove) the broker's fetch quota of the clients named `client_id`,
    through Kafka's own ConfigCommand (the Python admin client has no quota call)."""
    change = (["--add-config", f"consumer_byte_rate={bytes_per_second}"] if bytes_per_second
              else ["--delete-config", "consumer_byte_rate"])
    done = subprocess.run(
        ["java", "-Xmx128m", "-cp", f"{libs_dir()}/*", "kafka.admin.ConfigCommand",
         "--bootstrap-server", bootstrap, "--alter", "--entity-type", "clients",
         "--entity-name", client_id, *change], capture_output=True, text=True)
    assert done.returncode == 0, f"setting the quota failed: {done.stdout}{done.stderr}"


def assert_served_equals_oracle(settings: Settings, url: str) -> None:
    """Every order as `GET /orders/{id}` serves it (from the owner's local table, not from the
    changelog) has the pure oracle's verdicts."""
    oracle = verdicts(oracle_records(settings))
    differ: list[str] = []
    with httpx.Client(timeout=10.0) as client:
        for order_id, expected in oracle.items():
            if expected["state"] is None:
                continue  # an orphan: answered 404 by design
            response = client.get(f"{url}/orders/{order_id}")
            assert response.status_code == 200, (order_id, response.text)
            served = response.json()
            mismatches = served.pop("open_mismatches")
            alerts = served.pop("alerts")
            got = {"state": fulfillment.canonical_view(served),
                   "mismatches": sorted((m["mismatch_id"], m["difference"]) for m in mismatches),
                   "firing": sorted(a["fingerprint"] for a in alerts
                                    if a["status"] == "firing")}
            if got != expected:
                differ.append(f"{order_id}: served {got} oracle {expected}")
    assert not differ, f"{len(differ)} orders served otherwise than the oracle: {differ[:2]}"
