"""Schema registry read path: id lookups and subject lookups at concurrency 16.

    /work/main/.venv/bin/python bench/registry_bench.py [--bootstrap HOST:PORT] [--seconds 3]
        [--rounds 6] [--client auto|wrk|python|aiohttp[,...]] [--compare REF[:asyncio]] [--quick]

Without --bootstrap it starts the project's embedded Kafka broker. It starts a registry process
on the work tree's code (with --compare, one more per REF on that commit's registry/; ":asyncio"
runs it with uvloop hidden, i.e. on the standard asyncio loop), registers --schemas schemas in
each, and a bare aiohttp server answering fixed bytes: what one aiohttp process can serve on this
machine right now. Round by round, it drives ``GET /schemas/ids/{id}`` and ``POST /subjects/{s}``
with --concurrency keep-alive connections, one request in flight on each (no pipelining), and
prints the medians over the rounds: requests/s, p50/p99 latency, server CPU per request (from
/proc, all threads), client CPU per request, and the target's verdict.

The load generator runs on the same 2 cores as the server, so whatever CPU it spends per request
is taken from the server. Clients:
  wrk      the C load generator (Debian package; `make bench` installs it); the default if found
  python   a lean asyncio client: pre-encoded requests, a bare Protocol reading the status line
           and Content-Length (what measures when wrk is missing)
  aiohttp  aiohttp's ClientSession, what this script used to measure with: it needs more CPU per
           request than the registry does and caps the figure by itself

Target on 2 cores: >= 5,000 id lookups/s with p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit  # the bench dir is not a package
import jobkit
from httpload import DRIVERS, Load, Request, choose_clients

TARGET_RATE, TARGET_P99_MS = 5000, 20.0
IDS, LOOKUP = "GET /schemas/ids/{id}", "POST /subjects/{s}"


# -- servers --------------------------------------------------------------------------------
# Imports the registry from the directory given as the first argument (the work tree or an
# exported commit), ahead of the installed project, and runs it as `python -m registry` would.
LAUNCH = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
          "runpy.run_module('registry', run_name='__main__', alter_sys=True)")

BASELINE = """
import asyncio, sys
from aiohttp import web
try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
async def ready(request):
    return web.json_response({"writer": "baseline"})
async def schema(request):
    return web.Response(body=b'{"schema":"\\\\"string\\\\""}', content_type="application/json")
async def main():
    app = web.Application()
    app.router.add_get("/_ready", ready)
    app.router.add_get("/schemas/ids/{id}", schema)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    await asyncio.Event().wait()
run(main())
"""


@dataclass
class Server:
    label: str
    child: benchkit.Child
    url: str
    phases: dict[str, list[Request]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.child.proc.pid


def free_port() -> int:
    from streams.broker.launcher import free_port as pick

    return pick()


def export_registry(ref: str) -> Path:
    """registry/ as of commit `ref`, exported once under .data/bench/src/."""
    sha = benchkit._git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    if not sha:
        raise SystemExit(f"unknown commit {ref!r}")
    dest = benchkit.WORK / "src" / f"{sha[:12]}-registry"
    if not (dest / ".complete").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "registry"], cwd=benchkit.ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (dest / ".complete").touch()
    return dest


def without_uvloop() -> str:
    """A directory whose `uvloop` fails to import, for running a server on asyncio's loop."""
    shim = benchkit.WORK / "no-uvloop" / "uvloop"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text('raise ImportError("hidden: run on the asyncio loop")\n')
    return str(shim.parent)


def start_registry(label: str, src: Path, bootstrap: str, asyncio_loop: bool) -> Server:
    port = free_port()
    topic = f"_schemas-bench-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-c", LAUNCH, str(src), "--port", str(port), "--bootstrap-servers",
            bootstrap, "--topic", topic, "--log-level", "WARNING"]
    env = {}
    if asyncio_loop:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (without_uvloop(), os.environ.get("PYTHONPATH", "")) if p)
    name = "registry-bench-" + "".join(c if c.isalnum() else "_" for c in label)
    child = benchkit.Child(name, argv, env=env)
    return Server(label, child, f"http://127.0.0.1:{port}")


def start_baseline(schemas: int) -> Server:
    port = free_port()
    child = benchkit.Child("registry-bench-baseline", [sys.executable, "-c", BASELINE, str(port)])
    paths = [("GET", f"/schemas/ids/{i}", None) for i in range(1, schemas + 1)]
    return Server("bare aiohttp", child, f"http://127.0.0.1:{port}", {IDS: paths})


async def wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if not server.child.running:
                raise server.child.fail("exited during start-up")
            try:
                async with session.get(server.url + "/_ready") as resp:
                    if resp.status == 200 and (await resp.json()).get("writer"):
                        return
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.1)
    raise server.child.fail(f"was not ready within {timeout:.0f}s")


def order_schema(i: int) -> str:
    fields = [{"name": "order_id", "type": "string"}, {"name": "total_cents", "type": "long"},
              {"name": "lines", "type": {"type": "array", "items": {
                  "type": "record", "name": "Line", "fields": [
                      {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
              {"name": "note", "type": ["null", "string"], "default": None}]
    return json.dumps({"type": "record", "name": f"Order{i}", "namespace": "retail.bench",
                       "fields": fields})


async def register_schemas(server: Server, schemas: int) -> None:
    """Register the bench schemas; the requests of both phases use the ids handed out."""
    ids, lookups = [], []
    async with aiohttp.ClientSession() as session:
        for i in range(schemas):
            subject, body = f"bench-{i}-value", {"schema": order_schema(i)}
            async with session.post(f"{server.url}/subjects/{subject}/versions", json=body) as r:
                if r.status != 200:
                    raise RuntimeError(f"{server.label}: registering failed: {await r.text()}")
                ids.append((await r.json())["id"])
            lookups.append(("POST", f"/subjects/{subject}", json.dumps(body).encode()))
    server.phases = {IDS: [("GET", f"/schemas/ids/{i}", None) for i in ids], LOOKUP: lookups}


# -- measuring and reporting ----------------------------------------------------------------
@dataclass
class Sample:
    load: Load
    server_cpu_s: float
    # CPU the rest of the machine (other people's tests, the broker) used in the window, in
    # cores: what the server and the client had to share the 2 cores with.
    others_cores: float

    @property
    def rate(self) -> float:
        return self.load.requests / self.load.seconds if self.load.seconds else 0.0

    @property
    def server_us(self) -> float:
        return self.server_cpu_s * 1e6 / max(1, self.load.requests)

    @property
    def client_us(self) -> float:
        return self.load.client_cpu_s * 1e6 / max(1, self.load.requests)


def measure(server: Server, phase: str, client: str, concurrency: int, seconds: float) -> Sample:
    cpu, (busy, _) = benchkit.proc_cpu_seconds(server.pid), jobkit.machine_cpu()
    load = DRIVERS[client](server.url, server.phases[phase], concurrency, seconds)
    server_cpu = benchkit.proc_cpu_seconds(server.pid) - cpu
    busy = jobkit.machine_cpu()[0] - busy
    others = max(0.0, busy - server_cpu - load.client_cpu_s) / max(load.seconds, 1e-9)
    return Sample(load, server_cpu, others)


Key = tuple[str, str, str]  # server label, phase, client
Results = dict[Key, list[Sample]]


def median_of(samples: list[Sample], value: Callable[[Sample], float]) -> float:
    return benchkit.median([value(s) for s in samples])


def meets_target(samples: list[Sample]) -> bool:
    return (median_of(samples, lambda s: s.rate) >= TARGET_RATE
            and median_of(samples, lambda s: s.load.p99_ms) < TARGET_P99_MS)


def table(results: Results) -> str:
    rows = []
    for (label, phase, client), samples in results.items():
        server_us = median_of(samples, lambda s: s.server_us)
        rows.append([label, phase, client, f"{median_of(samples, lambda s: s.rate):,.0f}",
                     f"{median_of(samples, lambda s: s.load.p50_ms):.2f}",
                     f"{median_of(samples, lambda s: s.load.p99_ms):.2f}",
                     sum(s.load.errors for s in samples), f"{server_us:.1f}",
                     f"{1e6 / server_us:,.0f}" if server_us else "-",
                     f"{median_of(samples, lambda s: s.client_us):.1f}",
                     f"{median_of(samples, lambda s: s.others_cores):.2f}", len(samples)])
    return benchkit.markdown(
        ["server", "endpoint", "client", "req/s", "p50 ms", "p99 ms", "errors",
         "server CPU us/req", "server req/s per core", "client CPU us/req",
         "other processes (cores)", "runs"], rows)


def verdicts(results: Results, servers: list[Server], clients: list[str]) -> str:
    head = servers[0].label
    lines = []
    for client in clients:
        ids = results.get((head, IDS, client))
        if not ids:
            continue
        rate, p99 = median_of(ids, lambda s: s.rate), median_of(ids, lambda s: s.load.p99_ms)
        others = median_of(ids, lambda s: s.others_cores)
        busy = (f"; meanwhile other processes took {others:.1f} of the 2 cores the target "
                "counts on" if others >= 0.25 else "")
        lines.append(f"- target >= {TARGET_RATE:,} id lookups/s with p99 < {TARGET_P99_MS:g} ms, "
                     f"{client} client: **{'meets' if meets_target(ids) else 'misses'}** "
                     f"({rate:,.0f}/s = {rate / TARGET_RATE:.2f}x the target, p99 {p99:.2f} ms"
                     f"{busy})")
        for other in servers[1:]:
            theirs = results.get((other.label, IDS, client))
            if not theirs:
                continue
            ratio = rate / median_of(theirs, lambda s: s.rate)
            cpu = median_of(ids, lambda s: s.server_us) / median_of(theirs, lambda s: s.server_us)
            lines.append(f"  - vs {other.label}: {ratio:.2f}x the id lookups/s, {cpu:.2f}x the "
                         "server CPU per lookup")
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------------------
def start_servers(args: argparse.Namespace, bootstrap: str, servers: list[Server]) -> None:
    """Appends to `servers` as each starts, so the caller stops whatever did start."""
    servers.append(start_registry("registry (work tree)", benchkit.ROOT, bootstrap, False))
    for spec in args.compare:
        ref, _, loop = spec.partition(":")
        label = f"registry @{ref}" + (" (asyncio loop)" if loop == "asyncio" else "")
        servers.append(start_registry(label, export_registry(ref), bootstrap, loop == "asyncio"))
    if not args.no_baseline:
        servers.append(start_baseline(args.schemas))
    for server in servers:
        asyncio.run(wait_ready(server))
        if not server.phases:  # a registry: its requests use the ids it hands out
            asyncio.run(register_schemas(server, args.schemas))


def run_rounds(args: argparse.Namespace, servers: list[Server], clients: list[str]) -> Results:
    """Every (server, endpoint, client) once per round, interleaved, so that a busy moment of
    the shared machine hits all of them alike."""
    combos = [(server, phase, client) for phase in (IDS, LOOKUP) for server in servers
              if phase in server.phases for client in clients]
    for server, phase, client in combos:  # warm-up: connections, caches, parsed schemas
        measure(server, phase, client, args.concurrency, 1.0)
    results: Results = {}
    for n in range(args.rounds):
        for server, phase, client in combos:
            sample = measure(server, phase, client, args.concurrency, args.seconds)
            results.setdefault((server.label, phase, client), []).append(sample)
            print(f"round {n + 1}: {server.label}, {phase}, {client}: {sample.rate:,.0f}/s, "
                  f"p99 {sample.load.p99_ms:.2f} ms, server {sample.server_us:.1f} us/req, "
                  f"other processes {sample.others_cores:.2f} cores", flush=True)
    return results


def profile_if_missed(args: argparse.Namespace, server: Server, client: str,
                      results: Results) -> str:
    """When the target is missed: where the registry's time goes, under the same load."""
    samples = results[(server.label, IDS, client)]
    if args.profile <= 0 or meets_target(samples):
        return ""
    recording = jobkit.Spy(server.pid, benchkit.WORK / "registry-bench.spy").start(args.profile)
    measure(server, IDS, client, args.concurrency, args.profile)
    profile = recording.stop()
    return "\n\n" + jobkit.profile_section(
        f"{server.label} serving id lookups ({client} client; target missed)", profile,
        cpu_us=median_of(samples, lambda s: s.server_us))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each timed window")
    parser.add_argument("--rounds", type=int, default=6,
                        help="windows per combination (many short ones: the machine is shared)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--schemas", type=int, default=50)
    parser.add_argument("--client", default="auto",
                        help="auto (wrk if found, else python), or a list of wrk,python,aiohttp")
    parser.add_argument("--compare", action="append", default=[], metavar="REF[:asyncio]",
                        help="also measure the registry of commit REF (repeatable)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare aiohttp server")
    parser.add_argument("--profile", type=float, default=5.0,
                        help="seconds of py-spy on the registry when the target is missed (0: off)")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")
    parser.add_argument("--json", action="store_true", help="also print every sample as JSON")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.profile = 1, 3.0, 3.0
    benchkit.exit_on_sigterm()
    # The registries under test take their settings from the command line only.
    for key in [k for k in os.environ if k.startswith("FSTREAMS_REGISTRY_")]:
        del os.environ[key]
    clients = choose_clients(args.client)
    machine = benchkit.machine_line()
    servers: list[Server] = []
    with benchkit.broker(args.bootstrap) as bootstrap:
        try:
            start_servers(args, bootstrap, servers)
            results = run_rounds(args, servers, clients)
            profile = profile_if_missed(args, servers[0], clients[0], results)
        finally:
            for server in servers:
                server.child.stop()
    if args.json:
        print(json.dumps({" | ".join(k): [{**s.load.__dict__, "server_cpu_s": s.server_cpu_s,
                                           "others_cores": s.others_cores} for s in v]
                          for k, v in results.items()}, indent=2))
    text = (f"## registry_bench\n\nSchema registry read path, concurrency {args.concurrency} "
            f"(keep-alive, one request in flight per connection), medians of {args.rounds} "
            f"windows of {args.seconds:g} s; {machine}.\n\n{table(results)}\n\n"
            f"{verdicts(results, servers, clients)}\n\n"
            "1e6 / server CPU per request is the rate one core given to the registry alone "
            "would sustain; it rises when other processes share the cores and caches, but far "
            "less than req/s falls. The client's CPU, and the other processes', come out of the "
            "same 2 cores." + profile)
    benchkit.publish("registry_bench", text)


if __name__ == "__main__":
    main()
