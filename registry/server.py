"""Assemble and run the registry: store replay, HTTP server, writer election, clean shutdown.

Start order matters: the store replays the whole topic before the HTTP site accepts requests (no
request ever sees a partial state), and the election joins only once the site listens, because
the URL it advertises must already answer forwarded writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web
from aiokafka.errors import KafkaError

from registry.auth import Authenticator, AuthFileError
from registry.context import CONTEXT, RegistryContext
from registry.election import WriterElection
from registry.errors import RegistryError
from registry.forwarding import Forwarder
from registry.metrics import RegistryMetrics
from registry.middleware import guarded_routes
from registry.routes import routes
from registry.service import RegistryService
from registry.settings import RegistrySettings
from registry.state import RegistryState
from registry.store import KafkaStore

log = logging.getLogger(__name__)
MAINTENANCE_INTERVAL = 5.0


def create_app(ctx: RegistryContext) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[CONTEXT] = ctx
    app.add_routes(guarded_routes(routes))
    return app


class RegistryServer:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.state = RegistryState()
        self.store = KafkaStore(
            self.state, settings.bootstrap_servers, settings.topic,
            replication_factor=settings.replication_factor, write_timeout=settings.write_timeout,
        )
        self.election = WriterElection(
            settings.bootstrap_servers, settings.effective_group_id, settings.topic,
            own_url=settings.effective_advertised_url, eligible=settings.leader_eligible,
        )
        self.forwarder = Forwarder(self.election, settings.forward_timeout)
        self.service = RegistryService(self.state, self.store)
        authenticator = Authenticator.from_file(settings.auth_file) if settings.auth_file else None
        self.metrics = RegistryMetrics(
            schemas=lambda: len(self.state.schemas),
            subjects=lambda: len(self.state.subject_names()),
            is_writer=lambda: float(self.election.is_writer),
        )
        self.context = RegistryContext(
            self.service, self.store, self.election, self.forwarder, self.metrics, authenticator
        )
        self._runner: web.AppRunner | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.port = settings.port

    async def start(self) -> None:
        await self.store.start(self.settings.startup_timeout)
        await self.forwarder.start()
        self._runner = web.AppRunner(create_app(self.context), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        if self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        if not self.settings.advertised_url and self.settings.port == 0:
            # Port 0 asks the OS for a free port; advertise the one actually bound.
            host = self.settings.effective_advertised_url.rsplit(":", 1)[0]
            self.election.own_url = f"{host}:{self.port}"
        await self.election.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="registry-maintenance")
        log.info("registry listening on %s:%s (advertised %s, topic %s)", self.settings.host,
                 self.port, self.election.own_url, self.settings.topic)

    async def _maintain(self) -> None:
        # The writer re-publishes winners for keys that saw conflicting records (two writers
        # raced during an election) so that compaction can never resurrect the loser.
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MAINTENANCE_INTERVAL):
                    await self.store.conflict_seen.wait()
            self.store.conflict_seen.clear()
            if self.election.is_writer and self.state.conflicts:
                try:
                    repaired = await self.service.repair_conflicts()
                    log.warning("re-published %s conflicting keys", repaired)
                except Exception:
                    log.exception("repairing conflicting keys failed")

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        # Leave the group first so another instance can take over writes immediately.
        await self.election.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.forwarder.close()
        await self.store.stop()
        log.info("registry stopped")


async def serve(settings: RegistrySettings) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = RegistryServer(settings)
    try:
        await server.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The Kafka client is chatty at INFO (every rebalance step); keep its warnings only.
    if level.upper() != "DEBUG":
        logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run(settings: RegistrySettings) -> None:
    """Serve until stopped; a start-up failure (Kafka unreachable, bad users file) is logged
    with its reason and ends the process with status 1 instead of a traceback."""
    configure_logging(settings.log_level)
    try:
        # uvloop (a dependency wherever it exists) takes 15-30% off the CPU of a read request;
        # bench/registry_bench.py --compare REF:asyncio measures it against asyncio's loop.
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(settings))
    except (KafkaError, RegistryError, AuthFileError, OSError) as exc:
        log.error("the registry could not run: %s", getattr(exc, "message", None) or exc)
        sys.exit(1)
