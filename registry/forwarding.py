"""Send write requests that reach a non-writer instance on to the elected writer."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from registry.election import WriterElection
from registry.errors import ForwardingError

log = logging.getLogger(__name__)

FORWARDED_BY = "X-Registry-Forwarded-By"
NOT_WRITER = "X-Registry-Not-Writer"
PASSED_HEADERS = ("Content-Type", "Accept", "Authorization")
RETRY_PAUSE = 0.2


class Forwarder:
    def __init__(self, election: WriterElection, timeout: float) -> None:
        self.election = election
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.Response | None:
        """The writer's response, or None when this instance is (now) the writer itself.

        Retries while the writer is unknown, unreachable or answers that it no longer is the
        writer (an election is under way), until the forward timeout.
        """
        if request.headers.get(FORWARDED_BY):
            # The sender believed we are the writer but we are not: let it look again rather
            # than bounce the request around the group.
            raise ForwardingError(
                "this instance is not the elected writer", headers={NOT_WRITER: "1"}
            )
        assert self._session is not None
        body = await request.read()
        headers = {h: request.headers[h] for h in PASSED_HEADERS if h in request.headers}
        headers[FORWARDED_BY] = self.election.own_url
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        last_problem = "no writer has been elected"
        while (remaining := deadline - loop.time()) > 0:
            writer = await self.election.wait_for_writer(remaining)
            if writer is None:
                continue
            if writer == self.election.own_url:
                return None
            try:
                async with self._session.request(
                    request.method, writer + request.path_qs, data=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=remaining),
                ) as resp:
                    payload = await resp.read()
                    if not resp.headers.get(NOT_WRITER):
                        return web.Response(
                            status=resp.status, body=payload,
                            headers={"Content-Type": resp.headers.get("Content-Type", "")},
                        )
                    last_problem = f"{writer} is no longer the writer"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last_problem = f"the writer {writer} did not answer ({exc!r})"
            log.info("forwarding %s %s: %s; retrying", request.method, request.path, last_problem)
            await asyncio.sleep(RETRY_PAUSE)
        raise ForwardingError(f"Error while forwarding the request to the writer: {last_problem}")
