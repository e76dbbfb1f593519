"""Child processes of the product (registry, worker, generator) for the demo, tests and benches.

Each child gets its own process group and PR_SET_PDEATHSIG, so nothing outlives its owner;
`stop()` sends SIGTERM (the clean path: offsets committed, tables flushed) and SIGKILL after a
timeout. `kill()` is the crash path used by fault tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path


def session_dying_with_parent() -> None:
    """preexec_fn: a session of its own (stop() signals the whole group), and the kernel
    SIGKILLs the child when the process that started it dies, even by SIGKILL."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ChildProcess:
    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
                 log_path: Path | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=session_dying_with_parent, cwd=self.cwd)
        if out is not subprocess.DEVNULL:
            out.close()  # type: ignore[union-attr]
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60.0,
                   what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited ({self.returncode}) before it was {what}"
                                   f"{self._log_hint()}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not {what} within {timeout}s{self._log_hint()}")

    def _log_hint(self) -> str:
        if self.log_path and self.log_path.exists():
            tail = self.log_path.read_text(errors="replace")[-3000:]
            return f"; log {self.log_path}:\n{tail}"
        return ""

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def fstreams(*args: str) -> list[str]:
    """argv to run an `fstreams` subcommand with this interpreter (no PATH assumptions)."""
    return [sys.executable, "-m", "streams.cli", *args]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except Exception:
        return False
