"""Schema registry read-path throughput: id lookups and subject lookups at concurrency 16.

    /work/main/.venv/bin/python bench/registry_bench.py [--bootstrap HOST:PORT] [--seconds 5]

Without --bootstrap it starts the project's embedded Kafka broker. It starts one registry
process (``python -m registry``), registers --schemas schemas, then drives
``GET /schemas/ids/{id}`` and ``POST /subjects/{s}`` with an aiohttp client holding
--concurrency requests in flight, and prints requests/s and latency percentiles.
Target on 2 cores: >= 5,000 id lookups/s with p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CT = "application/vnd.schemaregistry.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from streams.broker.launcher import EmbeddedKafka

    with EmbeddedKafka() as kafka:
        yield kafka.bootstrap


@contextlib.contextmanager
def process(args: list[str], url: str, ready_path: str) -> Iterator[tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSTREAMS_REGISTRY_")}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            asyncio.run(_wait_ready(url + ready_path, proc))
            yield url, proc.pid
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def registry(bootstrap: str) -> contextlib.AbstractContextManager[tuple[str, int]]:
    port = free_port()
    topic = f"_schemas-bench-{uuid.uuid4().hex[:8]}"
    args = ["-m", "registry", "--port", str(port), "--bootstrap-servers", bootstrap,
            "--topic", topic, "--log-level", "WARNING"]
    return process(args, f"http://127.0.0.1:{port}", "/_ready")


# The floor of what this machine can serve right now: aiohttp answering fixed bytes, no
# registry logic. Printed next to the registry's figures so a loaded machine is visible.
BASELINE = """
import sys
from aiohttp import web
async def ready(request):
    return web.json_response({"writer": "baseline"})
async def schema(request):
    return web.Response(body=b'{"schema":"\\"string\\""}', content_type="application/json")
app = web.Application()
app.router.add_get("/_ready", ready)
app.router.add_get("/schemas/ids/{id}", schema)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def baseline() -> contextlib.AbstractContextManager[tuple[str, int]]:
    port = free_port()
    return process(["-c", BASELINE, str(port)], f"http://127.0.0.1:{port}", "/_ready")


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with session.get(url) as resp:
                    if (await resp.json()).get("writer"):
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become ready within 60s")


def order_schema(i: int) -> str:
    fields = [{"name": "order_id", "type": "string"}, {"name": "total_cents", "type": "long"},
              {"name": "lines", "type": {"type": "array", "items": {
                  "type": "record", "name": "Line", "fields": [
                      {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
              {"name": "note", "type": ["null", "string"], "default": None}]
    return json.dumps({"type": "record", "name": f"Order{i}", "namespace": "retail.bench",
                       "fields": fields})


async def drive(
    session: aiohttp.ClientSession, requests: list[tuple[str, str, bytes | None]],
    concurrency: int, seconds: float,
) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < stop_at:
            method, url, body = requests[i % len(requests)]
            i += concurrency
            started = time.perf_counter()
            async with session.request(method, url, data=body,
                                       headers={"Content-Type": CT}) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return len(latencies), latencies, errors


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def cpu_seconds(pid: int) -> float:
    """User+system CPU time the server process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    session: aiohttp.ClientSession, name: str, requests: list[tuple[str, str, bytes | None]],
    concurrency: int, seconds: float, pid: int,
) -> dict[str, object]:
    await drive(session, requests, concurrency, min(1.0, seconds))  # warm-up
    started, cpu, own = time.perf_counter(), cpu_seconds(pid), time.process_time()
    count, latencies, errors = await drive(session, requests, concurrency, seconds)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    own = time.process_time() - own
    # Server CPU per request does not depend on what else runs on the machine: 1/that is the
    # rate one dedicated core would sustain.
    return {
        "endpoint": name, "requests": count, "errors": errors,
        "per_second": round(count / elapsed),
        "server_cpu_us": round(cpu / max(1, count) * 1e6, 1),
        "client_cpu_us": round(own / max(1, count) * 1e6, 1),
        "per_core_second": round(count / cpu) if cpu else None,
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


async def bench(
    url: str, pid: int, schemas: int, concurrency: int, seconds: float
) -> list[dict[str, object]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        ids, subjects = [], []
        for i in range(schemas):
            subject = f"bench-{i}-value"
            async with session.post(f"{url}/subjects/{subject}/versions",
                                    json={"schema": order_schema(i)}) as resp:
                ids.append((await resp.json())["id"])
            subjects.append(subject)
        phases = {
            "GET /schemas/ids/{id}": [("GET", f"{url}/schemas/ids/{i}", None) for i in ids],
            "POST /subjects/{s}": [
                ("POST", f"{url}/subjects/{s}", json.dumps({"schema": order_schema(i)}).encode())
                for i, s in enumerate(subjects)
            ],
        }
        return [
            await measure(session, name, requests, concurrency, seconds, pid)
            for name, requests in phases.items()
        ]


async def bench_baseline(
    url: str, pid: int, concurrency: int, seconds: float
) -> dict[str, object]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        requests = [("GET", f"{url}/schemas/ids/1", None)]
        name = "baseline (bare aiohttp)"
        return await measure(session, name, requests, concurrency, seconds, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--schemas", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare aiohttp run")
    args = parser.parse_args()
    try:  # the registry uses uvloop when it is installed; so does the load generator
        import uvloop  # type: ignore[import-not-found]

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    with broker(args.bootstrap) as bootstrap, registry(bootstrap) as (url, pid):
        results = run(bench(url, pid, args.schemas, args.concurrency, args.seconds))
    if not args.no_baseline:
        with baseline() as (url, pid):
            results.append(run(bench_baseline(url, pid, args.concurrency, args.seconds)))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"registry read path, concurrency {args.concurrency}, {args.seconds:g}s per endpoint")
    print(f"{'endpoint':<25}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
          f"{'server CPU/req':>16}{'req/s per core':>16}{'client CPU/req':>16}")
    for r in results:
        print(f"{r['endpoint']:<25}{r['per_second']:>8}{r['p50_ms']:>8}{r['p99_ms']:>8}"
              f"{r['errors']:>7}{str(r['server_cpu_us']) + ' us':>16}{r['per_core_second']:>16}"
              f"{str(r['client_cpu_us']) + ' us':>16}")
    rate, p99 = float(results[0]["per_second"]), float(results[0]["p99_ms"])  # type: ignore[arg-type]
    verdict = "meets" if rate >= 5000 and p99 < 20 else "misses"
    print(f"target >= 5000 id lookups/s with p99 < 20 ms: {verdict}")
    if len(results) > 2:
        share = rate / max(1.0, float(results[2]["per_second"]))  # type: ignore[arg-type]
        print(f"id lookups reach {share:.0%} of what bare aiohttp serves on this machine now")


if __name__ == "__main__":
    main()
