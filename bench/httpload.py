"""HTTP load generators for the benchmarks: keep-alive connections, one request in flight each.

Each driver runs one timed window against a server and returns what the client saw: requests,
errors (answers other than 200, and for wrk socket errors too; the Python clients raise on a
broken connection), latency percentiles and the client's own CPU time, which matters because the
client shares the machine's cores with the server it measures.

  wrk      the C load generator (Debian package ``wrk``); costs the least CPU per request
  python   a lean asyncio client: requests encoded once, a bare Protocol that reads only the
           status line and Content-Length
  aiohttp  aiohttp's ClientSession: what a typical Python client costs (more CPU per request
           than the registry itself spends answering it)
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import aiohttp

CT = "application/vnd.schemaregistry.v1+json"
CLIENTS = ("wrk", "python", "aiohttp")
RESPONSE_TIMEOUT = 10.0  # seconds a request may still be in flight after the window
WRK_HINT = "the Debian package wrk: `make bench` installs it, or apt-get install wrk"

Request = tuple[str, str, bytes | None]  # method, path, body


@dataclass
class Load:
    """What a client saw in one timed window."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


def raw_request(method: str, path: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {CT}\r\n"
    if body is not None:
        head += f"Content-Type: {CT}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


class _Connection(asyncio.Protocol):
    """One keep-alive connection that sends the next request when the response is complete."""

    def __init__(self, requests: list[bytes], first: int, step: int,
                 latencies: list[float], errors: list[int]) -> None:
        self.requests, self.next, self.step = requests, first, step
        self.latencies, self.errors = latencies, errors
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop_at = 0.0
        self._buffer = b""
        self._expected = -1
        self._status = 0
        self._sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def begin(self, stop_at: float) -> None:
        self.stop_at = stop_at
        self._send()

    def _send(self) -> None:
        self._sent = now = time.perf_counter()
        if now >= self.stop_at:
            if not self.done.done():
                self.done.set_result(None)
            return
        assert self.transport is not None
        self.transport.write(self.requests[self.next % len(self.requests)])
        self.next += self.step

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._expected < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail("a response without Content-Length")
                return
            line_end = head.find(b"\r\n", at + 2)
            self._expected = end + 4 + int(head[at + 17:line_end if line_end > 0 else None])
            self._status = int(head[9:12])
        if len(self._buffer) < self._expected:
            return
        self.latencies.append(time.perf_counter() - self._sent)
        if self._status != 200:
            self.errors[0] += 1
        self._buffer, self._expected = self._buffer[self._expected:], -1
        self._send()

    def _fail(self, why: str) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"the server closed the connection ({exc or 'EOF'})")


async def python_load(url: str, requests: list[Request], concurrency: int,
                      seconds: float) -> Load:
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    encoded = [raw_request(*r) for r in requests]
    latencies: list[float] = []
    errors = [0]
    connections = []
    for n in range(concurrency):
        _, conn = await loop.create_connection(
            lambda n=n: _Connection(encoded, n, concurrency, latencies, errors), host, int(port))
        connections.append(conn)
    cpu, started = time.process_time(), time.perf_counter()
    for conn in connections:
        conn.begin(started + seconds)
    try:
        # A response that never completes would otherwise hang the run.
        await asyncio.wait_for(asyncio.gather(*(conn.done for conn in connections)),
                               seconds + RESPONSE_TIMEOUT)
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    ordered = sorted(latencies)
    return Load(len(ordered), errors[0], elapsed, percentile(ordered, 0.5),
                percentile(ordered, 0.99), cpu)


async def aiohttp_load(url: str, requests: list[Request], concurrency: int,
                       seconds: float) -> Load:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as session:
        cpu, started = time.process_time(), time.perf_counter()
        stop_at = started + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop_at:
                method, path, body = requests[i % len(requests)]
                i += concurrency
                sent = time.perf_counter()
                async with session.request(method, path, data=body,
                                           headers={"Content-Type": CT}) as resp:
                    await resp.read()
                    errors += resp.status != 200
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    ordered = sorted(latencies)
    return Load(len(ordered), errors, elapsed, percentile(ordered, 0.5),
                percentile(ordered, 0.99), cpu)


def lua_string(text: str) -> str:
    """A Lua long-bracket literal: no escaping, a level of '=' that the text does not close."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_script(requests: list[Request]) -> str:
    """Requests formatted once per thread, sent in turn; `done` prints the figures as JSON."""
    lines = ["local requests = {}", "local n = 0", "init = function(args)"]
    for method, path, body in requests:
        if body is None:
            args = f'"{method}", {lua_string(path)}'
        else:
            args = (f'"{method}", {lua_string(path)}, {{["Content-Type"] = "{CT}"}}, '
                    f"{lua_string(body.decode())}")
        lines.append(f"  requests[#requests + 1] = wrk.format({args})")
    lines += [
        "end",
        "request = function()",
        "  n = n + 1",
        "  return requests[(n % #requests) + 1]",
        "end",
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format("BENCH %d %d %d %d %d %d\\n", summary.requests,',
        "    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,",
        "    latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def wrk_load(url: str, requests: list[Request], concurrency: int, seconds: float) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(wrk_script(requests))
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", script.name,
             url], capture_output=True, text=True, timeout=seconds + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {out.returncode}): {out.stderr or out.stdout}")
    count, duration_us, status_errors, socket_errors, p50_us, p99_us = map(int, line.split()[1:])
    # wrk is the only child that ends inside the window: the growth of the children's rusage
    # is its CPU time.
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Load(count, status_errors + socket_errors, duration_us / 1e6, p50_us / 1000,
                p99_us / 1000, cpu)


Driver = Callable[[str, list[Request], int, float], Load]


def run_async(coro_fn: Callable[..., Coroutine[Any, Any, Load]]) -> Driver:
    def drive(url: str, requests: list[Request], concurrency: int, seconds: float) -> Load:
        return loop_runner()(coro_fn(url, requests, concurrency, seconds))

    return drive


def loop_runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    try:  # the lean client runs on uvloop too when the registry does
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


DRIVERS: dict[str, Driver] = {
    "wrk": wrk_load, "python": run_async(python_load), "aiohttp": run_async(aiohttp_load),
}


def choose_clients(spec: str) -> list[str]:
    """`auto`: wrk when installed, else the Python client; or a comma-separated list."""
    have_wrk = shutil.which("wrk") is not None
    if spec == "auto":
        if have_wrk:
            return ["wrk"]
        print(f"wrk not found ({WRK_HINT}): measuring with the Python client, which shares the "
              "cores with the server", flush=True)
        return ["python"]
    clients = [c.strip() for c in spec.split(",") if c.strip()]
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        raise SystemExit(f"unknown client(s) {', '.join(unknown)}; choose from {CLIENTS}")
    if "wrk" in clients and not have_wrk:
        print(f"wrk not found ({WRK_HINT}): skipping the wrk client", flush=True)
        clients.remove("wrk")
    if not clients:
        raise SystemExit("no load generator left to measure with")
    return clients
