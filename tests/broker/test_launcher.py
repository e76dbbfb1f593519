"""The launcher never leaves a JVM behind: CLI stop, owner death, and the session broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker import launcher
from streams.broker.launcher import EmbeddedKafka

pytestmark = pytest.mark.broker
FSTREAMS = [sys.executable, "-m", "streams.cli"]


def _jvms_for(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"kafka.Kafka {data_dir}"], capture_output=True,
                         text=True)
    return [int(p) for p in out.stdout.split()]


def _wait_gone(data_dir: Path, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _jvms_for(data_dir):
        time.sleep(0.2)
    return _jvms_for(data_dir)


def test_cli_start_status_stop(tmp_path: Path) -> None:
    data = tmp_path / "broker"
    env = {**os.environ, "FSTREAMS_DATA_DIR": str(tmp_path)}
    started = subprocess.run([*FSTREAMS, "broker", "start", "--port", "0", "--data-dir",
                              str(data)], capture_output=True, text=True, env=env, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        status = subprocess.run([*FSTREAMS, "broker", "status", "--data-dir", str(data)],
                                capture_output=True, text=True, env=env, timeout=30)
        assert status.returncode == 0
        assert "bootstrap=127.0.0.1:" in status.stdout and "healthy" in status.stdout
    finally:
        stopped = subprocess.run([*FSTREAMS, "broker", "stop", "--data-dir", str(data)],
                                 capture_output=True, text=True, env=env, timeout=60)
    assert "stopped" in stopped.stdout
    assert _wait_gone(data / "server.properties") == []
    after = subprocess.run([*FSTREAMS, "broker", "status", "--data-dir", str(data)],
                           capture_output=True, text=True, env=env, timeout=30)
    assert after.returncode == 1 and "not running" in after.stdout


def test_broker_dies_with_its_owner_even_on_sigkill(tmp_path: Path) -> None:
    """An owner killed with SIGKILL (a crashed test run) takes its JVM with it."""
    script = (
        "import sys, time\n"
        "from streams.broker.launcher import EmbeddedKafka\n"
        f"k = EmbeddedKafka(data_dir={str(tmp_path)!r}).start()\n"
        "print(k.bootstrap, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().startswith("127.0.0.1:")
        assert _jvms_for(tmp_path / "server.properties"), "JVM should be running"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert _wait_gone(tmp_path / "server.properties") == []


def test_context_manager_stops_and_cleans(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A cluster id starting with "-" (one in 64 random ids) must not read as an option.
    monkeypatch.setattr(launcher, "_random_cluster_id", lambda: "-" + "A" * 21)
    broker = EmbeddedKafka()
    with broker:
        data = broker.config.data_dir
        assert _jvms_for(data / "server.properties")
    assert _wait_gone(data / "server.properties") == []
    assert not data.exists()
