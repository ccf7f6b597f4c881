"""What the relay's public listener does with a connection, on raw sockets: an answer that
breaks off after its head cuts the connection, nothing pipelined after a request that closes
the connection reaches the venue, and the path after the venue segment is forwarded as sent,
for origin-form and absolute-form targets alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from yarl import URL

from relay.proxy import tunnel_path
from tests.relay.harness import (
    RunningRelay,
    add_venues,
    relay_config,
    running_relay,
    running_uplink,
    serving,
    tunnel_section,
    wait_until,
)


def raw(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


def venue_app(seen: dict[str, int]) -> web.Application:
    """``/count`` counts its calls in ``seen``; ``/broken`` breaks off after its head."""

    async def count(request: web.Request) -> web.Response:
        seen["count"] = seen.get("count", 0) + 1
        return web.Response(text=str(seen["count"]))

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1_000_000
        await response.prepare(request)
        await response.write(b"x" * 100_000)
        await asyncio.sleep(0.2)  # the head is out at the relay's client
        raise RuntimeError("the venue's answer breaks off")

    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_get("/broken", broken)
    return app


@contextlib.asynccontextmanager
async def relay_with_venue(tmp_path, seen: dict[str, int]) -> AsyncIterator[RunningRelay]:
    config = relay_config(tmp_path)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with (
        running_relay(config) as relay,
        serving(venue_app(seen)) as local,
        running_uplink(tmp_path, local, tunnel_section(relay.tunnel_url, "cafe-a", token)),
    ):
        await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        yield relay


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)


async def test_an_answer_that_breaks_off_cuts_the_connection(tmp_path):
    async with relay_with_venue(tmp_path, {}) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        try:
            writer.write(raw("GET /v/cafe-a/broken HTTP/1.1\nHost: r"))
            head = await read_head(reader)
            assert b"Content-Length: 1000000" in head
            rest = await asyncio.wait_for(reader.read(), 10)  # ends: cut, not completed
            assert 0 < len(rest) < 1_000_000
        finally:
            writer.close()


async def test_nothing_after_a_request_that_closes_the_connection_is_relayed(tmp_path):
    seen: dict[str, int] = {}
    async with relay_with_venue(tmp_path, seen) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        try:
            # The first asks to close; aiohttp's parser refuses bytes after it (400).
            writer.write(
                raw("GET /v/cafe-a/count HTTP/1.1\nHost: r\nConnection: close")
                + raw("GET /v/cafe-a/count HTTP/1.1\nHost: r")
            )
            head = await read_head(reader)
            assert head.startswith(b"HTTP/1.0 400")
            await asyncio.wait_for(reader.read(), 5)  # the rest of the 400, then the end
        finally:
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        try:
            writer.write(raw("GET /v/cafe-a/count HTTP/1.1\nHost: r\nConnection: close"))
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        assert answer.endswith(b"\r\n\r\n1")  # only this one reached the venue


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/v/cafe-a/loke/v1/x", "/loke/v1/x"),
        ("/v/cafe-a/", "/"),
        ("/v/caf%65-a/x?y=1", "/x?y=1"),  # aiohttp decodes the venue; the path stays as sent
        ("/v/cafe-a/b?c=/d/e", "/b?c=/d/e"),
        ("/v/cafe-a/a/../b/%2e%2e/c?d=%2F", "/a/../b/%2e%2e/c?d=%2F"),
        ("http://relay.example/v/cafe-a/x/../y?z=1", "/x/../y?z=1"),  # absolute-form
    ],
)
def test_the_path_after_the_venue_segment_is_forwarded_as_sent(target, forwarded):
    url = URL(target, encoded=True)
    # As aiohttp's parser makes ``rel_url`` (web_request.py: ``url.relative()``).
    assert tunnel_path(url.relative() if url.absolute else url) == forwarded
