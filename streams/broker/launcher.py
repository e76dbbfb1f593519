"""A single-node Apache Kafka (KRaft, combined broker+controller) run by the project itself.

Used by `fstreams broker start|stop|status`, by `make demo`, by the test session fixture and by
the benchmarks. The JVM is started in its own process group; when it is owned by a Python process
(tests, demo) it also gets PR_SET_PDEATHSIG so it dies with its owner even on SIGKILL — no orphan
brokers. A detached broker (`fstreams broker start`) is tracked by a pid file in its data dir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from streams.broker.libs import ensure_libs
from streams.procs import session_dying_with_parent

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
STATE_FILE = "broker.json"
log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker could not be started or stopped; the message says why and what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _random_cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes, base64url without padding (22 chars).
    return urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class BrokerConfig:
    data_dir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "768m"
    # Dev/test friendly: small internal topics, no initial rebalance delay, fast log cleaner.
    overrides: dict[str, str] = field(default_factory=dict)

    def properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft-logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Off: a metadata request for a missing topic must not create it with defaults
            # (wrong partition count, no compaction). Everything declares its topics.
            "auto.create.topics.enable": "false",
            "log.cleaner.backoff.ms": "1000",
            "log.retention.check.interval.ms": "5000",
            "message.max.bytes": "8388608",
        }
        props.update(self.overrides)
        return props


class EmbeddedKafka:
    """Context manager: `with EmbeddedKafka() as kafka: kafka.bootstrap`."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int = 0,
        heap: str = "768m",
        overrides: dict[str, str] | None = None,
        start_timeout: float = 90.0,
        detached: bool = False,
    ) -> None:
        self._owns_dir = data_dir is None
        path = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="fstreams-kafka-"))
        self.config = BrokerConfig(
            data_dir=path.resolve(),
            port=port or free_port(),
            controller_port=free_port(),
            heap=heap,
            overrides=overrides or {},
        )
        self.start_timeout = start_timeout
        self.detached = detached
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in: float = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.config.port}"

    @property
    def log_file(self) -> Path:
        return self.config.data_dir / "logs" / "server.log"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmbeddedKafka:
        if shutil.which("java") is None:
            raise BrokerError(
                "java is not on PATH: install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
                " or use the memory-only fallback with `fstreams broker start --fallback`."
            )
        started = time.monotonic()
        libs, _ = ensure_libs(quiet=True)
        data = self.config.data_dir
        (data / "logs").mkdir(parents=True, exist_ok=True)
        props_file = data / "server.properties"
        props_file.write_text(
            "".join(f"{k}={v}\n" for k, v in self.config.properties().items())
        )
        classpath = f"{libs}/*"
        if not (data / "kraft-logs" / "meta.properties").exists():
            self._format(classpath, props_file)
        cmd = [
            "java", f"-Xmx{self.config.heap}", "-Xms256m", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={data / 'logs'}",
            "-cp", classpath, "kafka.Kafka", str(props_file),
        ]
        stdout = open(data / "logs" / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            cmd,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=os.setsid if self.detached else session_dying_with_parent,
        )
        stdout.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        self._write_state()
        return self

    def _format(self, classpath: str, props_file: Path) -> None:
        cmd = [
            "java", "-Xmx256m", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.config.data_dir / 'logs'}",
            "-cp", classpath, "kafka.tools.StorageTool", "format",
            # `=`: a base64url id can start with "-", which argparse would take for an option
            # (one start in 64 failed with a usage message).
            f"--cluster-id={_random_cluster_id()}", "-c", str(props_file), "--ignore-formatted",
        ]
        for attempt in (1, 2):  # a JVM starved of CPU on a loaded machine can fail once
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                return
            log.warning("KRaft format attempt %d failed: %s%s", attempt, proc.stdout, proc.stderr)
        raise BrokerError(f"formatting the KRaft log dir failed: {proc.stdout}{proc.stderr}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with {self.process.returncode} during start-up; "
                    f"see {self.log_file} and {self.log_file.with_name('stdout.log')}"
                )
            if metadata_ok(self.bootstrap):
                return
            time.sleep(0.2)
        raise BrokerError(f"the Kafka broker did not answer within {self.start_timeout}s")

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            _terminate_group(proc.pid, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            (self.config.data_dir / STATE_FILE).unlink()
        if self._owns_dir:
            shutil.rmtree(self.config.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the broker (fault tests); the data dir is kept for a restart."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Start again on the same ports and data (after kill or stop(keep data))."""
        self.start()

    def _write_state(self) -> None:
        assert self.process is not None
        state = {"pid": self.process.pid, "bootstrap": self.bootstrap,
                 "data_dir": str(self.config.data_dir), "started_in_s": round(self.started_in, 2)}
        (self.config.data_dir / STATE_FILE).write_text(json.dumps(state))

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def metadata_ok(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka metadata request to `bootstrap` succeeds."""
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("fstreams.broker.probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": quiet})
    try:
        md = admin.list_topics(timeout=timeout)
        return bool(md.brokers)
    except Exception:
        return False


# -- detached broker, for `fstreams broker start|stop|status` --------------------------------
def read_state(data_dir: Path) -> dict[str, object] | None:
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, object] = json.loads(path.read_text())
    if not _alive(int(str(state["pid"]))):
        path.unlink(missing_ok=True)
        return None
    return state


def stop_detached(data_dir: Path, timeout: float = 20.0) -> bool:
    state = read_state(data_dir)
    if state is None:
        return False
    _terminate_group(int(str(state["pid"])), timeout)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def running_broker(data_dir: Path | None = None, **kwargs: object) -> Iterator[EmbeddedKafka]:
    broker = EmbeddedKafka(data_dir=data_dir, **kwargs)  # type: ignore[arg-type]
    with broker:
        yield broker


if __name__ == "__main__":  # manual smoke: python -m streams.broker.launcher
    with EmbeddedKafka() as k:
        print(k.bootstrap, f"started in {k.started_in:.1f}s", file=sys.stderr)
