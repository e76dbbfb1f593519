"""The benchmarks' HTTP load generators count what a server really answered."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import httpload  # the bench dir is not a package


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Ids below 5 exist; the body of every POST is kept. Responses come in two writes, so a
    client must put a response together from more than one read."""
    bodies: list[bytes] = []

    async def by_id(request: web.Request) -> web.StreamResponse:
        found = int(request.match_info["id"]) < 5
        body = b'{"schema":"\\"string\\""}' if found else b'{"error_code":40403}'
        response = web.StreamResponse(status=200 if found else 404)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:5])
        await response.write(body[5:])
        return response

    async def lookup(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.json_response({"id": 1})

    app = web.Application()
    app.router.add_get("/schemas/ids/{id}", by_id)
    app.router.add_post("/subjects/{subject}", lookup)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", bodies
    await runner.cleanup()


async def test_python_client_counts_answers_and_errors(server: tuple[str, list[bytes]]) -> None:
    url, _ = server
    requests: list[httpload.Request] = [("GET", f"/schemas/ids/{i}", None) for i in (1, 2, 3, 9)]
    load = await httpload.python_load(url, requests, 4, 0.3)
    assert load.requests > 20
    # Each of the 4 connections asks for one id only (its offset, step 4): one in four is 404.
    assert load.errors > 0
    assert abs(load.errors / load.requests - 0.25) < 0.1
    assert 0 < load.p50_ms <= load.p99_ms
    assert load.client_cpu_s > 0


async def test_python_client_sends_bodies_intact(server: tuple[str, list[bytes]]) -> None:
    url, bodies = server
    body = b'{"schema":"{\\"type\\":\\"string\\"}"}'
    load = await httpload.python_load(url, [("POST", "/subjects/s-value", body)], 2, 0.2)
    assert load.requests > 0 and load.errors == 0
    assert bodies and set(bodies) == {body}


def test_lua_long_strings_survive_any_body() -> None:
    assert httpload.lua_string("a]]b") == "[=[a]]b]=]"
    assert httpload.lua_string("x]=]y]]") == "[==[x]=]y]]]==]"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench)")
async def test_wrk_counts_answers_and_errors(server: tuple[str, list[bytes]]) -> None:
    url, bodies = server
    requests: list[httpload.Request] = [("GET", "/schemas/ids/1", None),
                                        ("GET", "/schemas/ids/9", None),
                                        ("POST", "/subjects/s-value", b'{"schema":"]]"}')]
    # wrk runs as a child process; the server runs on this loop meanwhile.
    load = await asyncio.to_thread(httpload.wrk_load, url, requests, 2, 1.0)
    assert load.requests > 20
    assert abs(load.errors / load.requests - 1 / 3) < 0.1
    assert set(bodies) == {b'{"schema":"]]"}'}
