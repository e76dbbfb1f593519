"""Helpers for the registry tests: a registry subprocess and schema builders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
CT = "application/vnd.schemaregistry.v1+json"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(RuntimeError):
    pass


class RegistryProcess:
    """One registry subprocess; ``url`` once started. Its log goes to a file for post-mortems."""

    def __init__(
        self, bootstrap: str, topic: str, log_dir: Path, *, group_id: str | None = None,
        auth_file: Path | None = None, port: int | None = None, eligible: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.group_id = group_id or f"{topic}-writers"
        self.auth_file = auth_file
        self.eligible = eligible
        self.extra_env = env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"registry-{self.port}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_for_writer: bool | None = None) -> RegistryProcess:
        for _attempt in range(3):
            try:
                return self._start_once(wait_for_writer)
            except PortTaken:
                # Another process bound the free port first: pick another one.
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError("no free port for the registry after 3 attempts")

    def _start_once(self, wait_for_writer: bool | None) -> RegistryProcess:
        cmd = [
            sys.executable, "-m", "registry", "--host", "127.0.0.1", "--port", str(self.port),
            "--bootstrap-servers", self.bootstrap, "--topic", self.topic,
            "--group-id", self.group_id, "--log-level", "INFO",
        ]
        if self.auth_file is not None:
            cmd += ["--auth-file", str(self.auth_file)]
        if not self.eligible:
            cmd += ["--no-leader-eligible"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FSTREAMS_REGISTRY_")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.wait_ready(self.eligible if wait_for_writer is None else wait_for_writer)
        return self

    def wait_ready(self, wait_for_writer: bool = True) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.proc = None
                output = self.log_path.read_text()[-3000:]
                if "address already in use" in output.lower():
                    raise PortTaken(output)
                raise RuntimeError(f"registry exited: {output}")
            try:
                body = httpx.get(f"{self.url}/_ready", timeout=1).json()
                if body.get("ready") and (body.get("writer") or not wait_for_writer):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"registry not ready in {START_TIMEOUT}s: {self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code




StartRegistry = Callable[..., RegistryProcess]


def record_schema(name: str = "Order", *fields: dict[str, object]) -> str:
    doc = {"type": "record", "name": name, "namespace": "com.acme", "fields": list(fields)}
    return json.dumps(doc)
