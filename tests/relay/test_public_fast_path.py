"""The relay's public fast path (``bridge/relay/fastpath.py``): which requests it takes (bytes
only, no event loop), and that what it answers is what aiohttp's route answers, byte for
byte but the date, on real sockets: one bridge-side tunnel client holds the venue on two
relays, one with the fast path and one without, and both get the same raw requests."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bridge.http.head import HAND_OVER
from bridge.relay.fastpath import FAST_BODY_BYTES, RelayRequest, read_relay_request
from bridge.relay.proxy import tunnel_path
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
from tests.relay.test_forwarding import echo_app

LIMIT = 1024 * 1024


def raw(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    ("request_bytes", "venue", "path"),
    [
        (raw("GET /v/cafe-a/loke/v1/bill HTTP/1.1\nHost: r"), "cafe-a", "/loke/v1/bill"),
        (raw("GET /v/cafe-a/ HTTP/1.1\nHost: r"), "cafe-a", "/"),
        (raw("GET /v/c.a_f~e/x/y/ HTTP/1.1"), "c.a_f~e", "/x/y/"),
        (raw("GET /v/cafe-a/echo?a=1&b=%2F%20x HTTP/1.1"), "cafe-a", "/echo?a=1&b=%2F%20x"),
        (raw("GET /v/cafe-a/echo?q=a/../b HTTP/1.1"), "cafe-a", "/echo?q=a/../b"),
        (raw("POST /v/cafe-a/pay HTTP/1.1\nContent-Length: 3", b"abc"), "cafe-a", "/pay"),
    ],
)
def test_plain_requests_are_relayed_here(request_bytes, venue, path):
    request = read_relay_request(request_bytes + b"GET /next", LIMIT)
    assert isinstance(request, RelayRequest)
    assert (request.venue, request.path) == (venue, path)
    assert request.length == len(request_bytes)


def test_fields_keep_their_spelling_and_order_and_the_body_is_whole():
    data = raw(
        "POST /v/cafe-a/pay HTTP/1.1\nX-B: 2\nhost: r\nX-a: 1\nContent-Length: 4\n"
        "Connection: close",
        b"body",
    )
    request = read_relay_request(data, LIMIT)
    assert isinstance(request, RelayRequest)
    assert request.fields[:3] == [(b"X-B", b" 2"), (b"host", b" r"), (b"X-a", b" 1")]
    assert (request.method, request.body, request.close) == ("POST", b"body", True)


@pytest.mark.parametrize(
    "request_bytes",
    [
        raw("HEAD /v/cafe-a/x HTTP/1.1"),
        raw("PUT /v/cafe-a/x HTTP/1.1\nContent-Length: 0"),
        raw("GET /v/cafe-a HTTP/1.1"),  # no slash after the venue: aiohttp's 404
        raw("GET /health HTTP/1.1"),
        raw("GET /tunnel HTTP/1.1\nUpgrade: websocket\nConnection: Upgrade"),
        raw("GET /v/cafe-a/a//b HTTP/1.1"),
        raw("GET /v/cafe-a/a/../b HTTP/1.1"),
        raw("GET /v/cafe-a/.. HTTP/1.1"),
        raw("GET /v/../x HTTP/1.1"),
        raw("GET /v/cafe-a/%41 HTTP/1.1"),  # percent-encoded path: aiohttp decodes
        raw("GET /v/caf%65/x HTTP/1.1"),
        raw("GET /v/cafe-a/x?a=%zz HTTP/1.1"),
        raw("GET /v/cafe-a/x?a=[1] HTTP/1.1"),
        raw("GET /v/cafe-a/x#frag HTTP/1.1"),
        raw("GET /v/cafe-a/x HTTP/1.0"),
        raw("GET /v/cafe-a/x HTTP/1.1\nContent-Length: 1", b"x"),
        raw("POST /v/cafe-a/x HTTP/1.1\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
        raw("POST /v/cafe-a/x HTTP/1.1\nContent-Length: 1\nContent-Length: 1", b"x"),
        raw(f"POST /v/cafe-a/x HTTP/1.1\nContent-Length: {FAST_BODY_BYTES + 1}"),
        raw("POST /v/cafe-a/x HTTP/1.1\nExpect: 100-continue\nContent-Length: 1"),
        raw("GET /v/cafe-a/x HTTP/1.1\nX-Bad: a\x01b"),
    ],
)
def test_everything_else_is_handed_to_aiohttp(request_bytes):
    assert read_relay_request(request_bytes, LIMIT) is HAND_OVER


def test_a_body_over_the_relays_limit_is_handed_over_for_its_413():
    data = raw("POST /v/cafe-a/x HTTP/1.1\nContent-Length: 11", b"x" * 11)
    assert read_relay_request(data, 10) is HAND_OVER
    assert isinstance(read_relay_request(data, 11), RelayRequest)


def test_an_incomplete_request_waits():
    data = raw("POST /v/cafe-a/x HTTP/1.1\nContent-Length: 5", b"abcde")
    for cut in range(len(data)):
        assert read_relay_request(data[:cut], LIMIT) is None
    assert isinstance(read_relay_request(data, LIMIT), RelayRequest)


# -- the same answers as aiohttp's route ----------------------------------------------------


def differential_app(seen: dict[str, int]) -> web.Application:
    """The forwarding tests' echo app, plus answers with edge-case framing, and ``/count``,
    which counts its calls in ``seen``."""
    app = echo_app({})

    async def count(request: web.Request) -> web.Response:
        seen["count"] = seen.get("count", 0) + 1
        return web.Response(text=str(seen["count"]))

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"X-Empty": "yes"})

    async def unsized(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for i in range(5):
            await response.write(b"part %d;" % i * 5000)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def typed(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, status=202, headers={"Server": "venue"})

    app.router.add_get("/empty", empty)
    app.router.add_get("/unsized", unsized)

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1_000_000
        await response.prepare(request)
        await response.write(b"x" * 100_000)
        await asyncio.sleep(0.2)  # the head is out at the relay's client
        raise RuntimeError("the venue's answer breaks off")

    async def headers(request: web.Request) -> web.Response:
        """Every header the venue got, as sent: what the relay forwarded."""
        seen = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        return web.json_response({"path": request.raw_path, "headers": seen})

    app.router.add_get("/count", count)
    app.router.add_get("/typed", typed)
    app.router.add_route("*", "/headers", headers)
    app.router.add_get("/broken", broken)
    return app


@contextlib.asynccontextmanager
async def two_relays(
    tmp_path, seen: dict[str, int] | None = None
) -> AsyncIterator[tuple[RunningRelay, RunningRelay]]:
    """Relay ``fast`` (the fast path) and relay ``plain`` (aiohttp only), venue cafe-a held
    on both by one tunnel client serving :func:`differential_app`."""
    fast_config = relay_config(tmp_path)
    token = add_venues(fast_config, "cafe-a")["cafe-a"]
    plain_config = relay_config(tmp_path, relay={"fast_path": False})  # the same venues file
    async with (
        running_relay(fast_config) as fast,
        running_relay(plain_config) as plain,
        serving(differential_app({} if seen is None else seen)) as local,
    ):
        assert fast.server.listener is not None and plain.server.listener is None
        tunnel = tunnel_section(
            fast.tunnel_url, "cafe-a", token, urls=[fast.tunnel_url, plain.tunnel_url]
        )
        async with running_uplink(tmp_path, local, tunnel):
            await wait_until(
                lambda: all(r.relay.registry.get("cafe-a") is not None for r in (fast, plain))
            )
            yield fast, plain


async def read_answer(reader: asyncio.StreamReader, method: str) -> tuple[bytes, bytes]:
    """One answer: its head without ``Date`` (fields sorted) and its body, de-chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    fields = sorted(line for line in lines[1:] if not line.lower().startswith(b"date:"))
    named = {line.split(b":")[0].lower(): line.split(b":", 1)[1].strip() for line in fields}
    status = int(lines[0].split(b" ")[1])
    body = b""
    if method == "HEAD" or status in (204, 304):
        pass
    elif named.get(b"transfer-encoding") == b"chunked":
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.readexactly(int(named.get(b"content-length", b"0")))
    return b"\r\n".join([lines[0], *fields]), body


async def exchange(relay: RunningRelay, requests: list[tuple[str, bytes]]) -> list[object]:
    """Send ``requests`` pipelined on one connection; their answers, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        writer.write(b"".join(data for _, data in requests))
        return [await asyncio.wait_for(read_answer(reader, m), 10) for m, _ in requests]
    finally:
        writer.close()


UPLOAD = os.urandom(30_000)
DIFFERENTIAL = [
    ("GET", raw("GET /v/cafe-a/echo?x=1 HTTP/1.1\nHost: r\nX-Custom: kept")),
    (
        "GET",
        raw(
            "GET /v/cafe-a/headers?a=%41 HTTP/1.1\nHost: r\nx-lower: 1\nX-Forwarded-Proto: ftp\n"
            "Keep-Alive: timeout=5\nConnection: keep-alive, X-Dropped\nX-Dropped: 1\nAccept: */*"
        ),
    ),
    (
        "POST",
        raw(
            "POST /v/cafe-a/headers HTTP/1.1\nHost: r\nContent-Type: text/x\nContent-Length: 2",
            b"hi",
        ),
    ),
    ("GET", raw("GET /v/cafe-a/echo HTTP/1.1\nHost: r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2")),
    ("POST", raw(f"POST /v/cafe-a/echo HTTP/1.1\nHost: r\nContent-Length: {len(UPLOAD)}", UPLOAD)),
    ("POST", raw("POST /v/cafe-a/echo HTTP/1.1\nHost: r\nContent-Length: 0")),
    ("GET", raw("GET /v/cafe-a/blob?n=300001 HTTP/1.1\nHost: r")),
    ("GET", raw("GET /v/cafe-a/unsized HTTP/1.1\nHost: r")),
    ("GET", raw("GET /v/cafe-a/empty HTTP/1.1\nHost: r")),
    ("GET", raw("GET /v/cafe-a/typed HTTP/1.1\nHost: r")),
    ("GET", raw("GET /v/cafe-a/nowhere HTTP/1.1\nHost: r")),
    ("GET", raw("GET /v/cafe-b/echo HTTP/1.1\nHost: r")),  # no tunnel: 503 venue_offline
    ("GET", raw("GET /v/cafe-a/echo HTTP/1.1\nHost: r\nConnection: keep-alive")),
]


async def test_the_fast_path_answers_what_aiohttps_route_answers(tmp_path):
    async with two_relays(tmp_path) as (fast, plain):
        for request in DIFFERENTIAL:
            fast_answer, plain_answer = (
                await exchange(fast, [request]),
                await exchange(plain, [request]),
            )
            assert fast_answer == plain_answer, request
        # Pipelined on one connection, a hand-over (HEAD) among them, and a last one closing.
        closing = ("GET", raw("GET /v/cafe-a/typed HTTP/1.1\nHost: r\nConnection: close"))
        head = ("HEAD", raw("HEAD /v/cafe-a/blob?n=10 HTTP/1.1\nHost: r"))
        pipeline = [*DIFFERENTIAL, head, DIFFERENTIAL[0], closing]
        assert await exchange(fast, pipeline) == await exchange(plain, pipeline)


async def test_fast_connections_stay_with_the_fast_path_until_a_hand_over(tmp_path):
    async with two_relays(tmp_path) as (fast, _):
        listener = fast.server.listener
        assert listener is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        try:
            writer.write(DIFFERENTIAL[0][1])
            await read_answer(reader, "GET")
            assert len(listener.connections) == 1  # answered here, still ours
            writer.write(raw("PUT /v/cafe-a/echo HTTP/1.1\nHost: r\nContent-Length: 0"))
            head, _ = await read_answer(reader, "PUT")
            assert head.startswith(b"HTTP/1.1 405")  # aiohttp's router, via the tunnel
            assert len(listener.connections) == 0  # aiohttp's from then on
            writer.write(DIFFERENTIAL[0][1])
            head, _ = await read_answer(reader, "GET")
            assert head.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()


async def test_an_answer_that_breaks_off_cuts_the_connection_as_aiohttps_route_does(tmp_path):
    async with two_relays(tmp_path) as relays:
        for relay in relays:
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            try:
                writer.write(raw("GET /v/cafe-a/broken HTTP/1.1\nHost: r"))
                head = await reader.readuntil(b"\r\n\r\n")
                assert b"Content-Length: 1000000" in head
                rest = await asyncio.wait_for(reader.read(), 10)  # ends: cut, not completed
                assert 0 < len(rest) < 1_000_000
            finally:
                writer.close()


async def test_nothing_after_a_request_that_closes_the_connection_is_relayed(tmp_path):
    seen: dict[str, int] = {}
    async with two_relays(tmp_path, seen) as (fast, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        try:
            # The first is answered at once (no tunnel for cafe-b) and asks to close.
            writer.write(
                raw("GET /v/cafe-b/x HTTP/1.1\nHost: r\nConnection: close")
                + raw("GET /v/cafe-a/count HTTP/1.1\nHost: r")
            )
            head, _ = await read_answer(reader, "GET")
            assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head
            assert await asyncio.wait_for(reader.read(), 5) == b""
        finally:
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        try:
            writer.write(raw("GET /v/cafe-a/count HTTP/1.1\nHost: r"))
            _, body = await read_answer(reader, "GET")
        finally:
            writer.close()
        assert body == b"1"  # only this one reached the venue


@pytest.mark.parametrize(
    ("raw_path", "forwarded"),
    [
        ("/v/cafe-a/loke/v1/x", "/loke/v1/x"),
        ("/v/cafe-a/", "/"),
        ("/v/caf%65-a/x?y=1", "/x?y=1"),  # aiohttp decodes the venue; the path stays as sent
        ("/v/cafe-a/b?c=/d/e", "/b?c=/d/e"),
    ],
)
def test_aiohttps_route_forwards_the_path_after_the_venue_segment_as_sent(raw_path, forwarded):
    assert tunnel_path(raw_path) == forwarded
