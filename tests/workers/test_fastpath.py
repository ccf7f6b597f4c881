"""A worker's fast path in-process, on 127.0.0.1: which connections it keeps, which it hands
to aiohttp, and when it closes them. Its answers are compared with aiohttp's in
``test_worker_processes.py``; this is its life cycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from bridge.app import create_app
from bridge.config import Config
from bridge.http.fastconn import FastListener
from bridge.http.head import FastRequest
from bridge.platforms.loke.backend import LOKE_BACKEND
from bridge.workers.fastpath import loke_listener
from tests.conftest import ADMIN_AUTH, LOKE_AUTH, loke_url

KEEPALIVE_S = 0.3

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def fast(config: Config) -> AsyncIterator[tuple[FastListener[FastRequest], int]]:
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    assert runner.server is not None
    app = runner.app
    fast_path = loke_listener(app[LOKE_BACKEND], runner.server, 2048, keepalive_s=KEEPALIVE_S)
    server = await asyncio.get_running_loop().create_server(fast_path.protocol, "127.0.0.1", 0)
    try:
        yield fast_path, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await fast_path.shutdown(1.0)
        await runner.cleanup()


def request(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: bridge", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], object]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in head[1:] if line)}
    body = await reader.readexactly(int(fields["content-length"]))
    return int(head[0].split(" ")[1]), fields, orjson.loads(body)


async def test_loke_requests_stay_on_the_fast_path_until_another_url_hands_over(fast) -> None:
    fast_path, port = fast
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(loke_url(1), LOKE_AUTH) * 2)
    for _ in range(2):
        status, fields, bill = await answer(reader)
        assert status == 200 and fields["content-type"] == "application/json; charset=utf-8"
        assert isinstance(bill, dict) and bill["table"] == "1" and "date" in fields
    assert len(fast_path.connections) == 1  # answered here, not by aiohttp

    writer.write(request("/api/status", ADMIN_AUTH) + request(loke_url(2), LOKE_AUTH))
    status, _, body = await answer(reader)
    assert status == 200 and isinstance(body, dict) and "pos" in str(body)
    status, _, bill = await answer(reader)  # aiohttp's now, the same answer
    assert status == 200 and isinstance(bill, dict) and bill["table"] == "2"
    assert not fast_path.connections
    writer.close()


async def test_a_silent_connection_is_closed_after_the_keepalive(fast) -> None:
    _, port = fast
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(loke_url(1), LOKE_AUTH))
    assert (await answer(reader))[0] == 200
    writer.write(b"GET /loke/v1/loca")  # a head that never ends is silence too
    assert await asyncio.wait_for(reader.read(), 10 * KEEPALIVE_S) == b""
    writer.close()


async def test_shutdown_closes_idle_connections(fast) -> None:
    fast_path, port = fast
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(loke_url(1), LOKE_AUTH))
    assert (await answer(reader))[0] == 200
    await fast_path.shutdown(1.0)
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    assert not fast_path.connections
    writer.close()


async def test_connection_close_is_answered_then_closed(fast) -> None:
    _, port = fast
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(loke_url(1), {**LOKE_AUTH, "Connection": "close"}))
    status, fields, _ = await answer(reader)
    assert status == 200 and fields["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()
