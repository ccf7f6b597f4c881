"""Raw HTTP/1.1 bytes to the relay and to the bridge directly, for ``test_one_parser.py``.

The real relay and the real bridge (``harness.relay_and_bridge``) run on an event loop in a
thread of their own, so a test (a hypothesis property among them) can write its bytes with
plain blocking sockets and read each answer to the end of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from relay.ratelimit import VenueRateLimiter
from tests.relay.harness import relay_and_bridge

VENUE = "cafe-a"


@dataclass(frozen=True)
class Ports:
    relay: int
    bridge: int


@dataclass(frozen=True)
class Answer:
    """What came back: the status (0: the connection closed with no answer) and, for a JSON
    body, its ``error`` code (``None`` otherwise)."""

    status: int
    error: str | None
    body: bytes

    @property
    def json(self) -> object:
        return orjson.loads(self.body)


@contextlib.contextmanager
def stack(tmp_path: Path) -> Iterator[Ports]:
    """Relay and bridge on 127.0.0.1, served from a background thread until the block ends.
    The relay's rate limit is raised out of the way: a property test sends many requests."""
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[Ports] = loop.create_future()
    stop = asyncio.Event()

    async def serve() -> None:
        limits = {"request_timeout_s": 10.0}
        try:
            async with relay_and_bridge(tmp_path, VENUE, limits=limits) as (relay, uplink):
                assert uplink.origin is not None
                relay.relay.requests = VenueRateLimiter(100_000.0, 100_000)
                ready.set_result(Ports(relay.port, uplink.origin.port))
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        ports = asyncio.run_coroutine_threadsafe(_wait(ready), loop).result(30)
        yield ports
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


async def _wait(ready: asyncio.Future[Ports]) -> Ports:
    return await ready


def send(port: int, data: bytes, timeout_s: float = 15.0) -> Answer:
    """Write ``data`` on a new connection and read until the server closes it: the request
    must say ``Connection: close`` (or be refused, which closes it too)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        received = bytearray()
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            received += piece
    return _answer(bytes(received))


def _answer(received: bytes) -> Answer:
    """The first answer in ``received``: its status, and its body when framed by length."""
    head, _, rest = received.partition(b"\r\n\r\n")
    if not head:
        return Answer(0, None, b"")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    fields = dict(line.lower().split(b": ", 1) for line in lines[1:] if b": " in line)
    length = fields.get(b"content-length")
    body = rest[: int(length)] if length is not None and length.isdigit() else rest
    error = None
    if fields.get(b"content-type", b"").startswith(b"application/json"):
        with contextlib.suppress(orjson.JSONDecodeError):
            decoded = orjson.loads(body)
            if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
                error = decoded["error"]
    return Answer(status, error, body)


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    host: bool = True,
) -> bytes:
    """One request, closing the connection after it; ``headers`` as given, in order."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host:
        lines.append("Host: test.example")
    lines += [f"{name}: {value}" for name, value in headers or []]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def via_relay(target: str) -> str:
    """``target`` (origin-form) as the relay's public URL for the venue."""
    return f"/v/{VENUE}{target}"
