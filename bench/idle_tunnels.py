"""Lightweight fake bridges: many idle tunnels to one relay from one process, or one that
answers every request with the same canned answer.

Run by ``bench/relay.py`` (several at once, each with a slice of the venues; one with an
``answer`` for the relay's own capacity, part (c))::

    python -m bench.idle_tunnels '<job as JSON>'

Each fake bridge is a bare websocket client (an :class:`asyncio.Protocol`, RFC 6455 framing by
hand, no HTTP library) carrying the real sans-I/O tunnel protocol
(:class:`tunnel.protocol.TunnelProtocol`, client side): it sends the real HELLO with its
venue's token, waits for WELCOME, then idles, answering the relay's tunnel PINGs with PONGs
(the protocol queues them) and websocket pings with pongs. So the relay holds exactly what a
real bridge's idle tunnel costs it, while the client side stays cheap.

The job: ``port``, ``tokens_file`` (JSON ``[[venue, token], …]``), ``first`` and ``count`` (the
slice this process opens), ``parallel`` (handshakes in flight), ``handshake_timeout_s`` and
``max_life_s``; optionally ``answer``: ``{"status", "headers": [[name, value], …], "body"}``
(text), sent whole (``send_response``) to every REQUEST_HEAD at once, whatever its path or
body (whose flow-control credit is given back unread). The process raises its open-file
limit as far as the hard limit allows, opens its tunnels, prints ``READY {json}`` (welcomed,
refused, failed by kind), then idles until a line arrives on stdin (or ``max_life_s``
passes), and prints ``RESULT {json}`` (PINGs and requests answered, tunnels the relay closed
meanwhile) before closing every socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tunnel.messages import BodyChunk, Close, Ping, RequestHead, Welcome
from tunnel.protocol import SEND_EOF, Side, TunnelProtocol

STATS: Counter[str] = Counter()


def raise_nofile(wanted: int) -> dict[str, int]:
    """Raise RLIMIT_NOFILE's soft limit towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard}


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if not n:
        return key
    stream = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return key + masked.to_bytes(n, "big")


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A client's (masked) websocket frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + _mask(payload)


#: A canned answer: status, header fields, body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def canned(job: dict[str, Any]) -> Answer | None:
    answer = job.get("answer")
    if not answer:
        return None
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in answer["headers"]]
    return answer["status"], headers, answer["body"].encode()


class FakeBridge(asyncio.Protocol):
    def __init__(
        self, host: str, port: int, venue: str, token: str, answer: Answer | None = None
    ) -> None:
        self.request = (
            f"GET /tunnel HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.venue, self.token, self.answer = venue, token, answer
        self.protocol = TunnelProtocol(Side.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.message = bytearray()  # a fragmented message being gathered
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def settle(self, outcome: str) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.settle("closed before WELCOME")
        if self.outcome.result() == "welcomed":
            STATS["lost_after_welcome"] += 1

    def flush(self) -> None:
        """What the protocol queued, in one websocket message, as the real bridge's writer
        coalesces frames (a canned answer's head, body and end then arrive together)."""
        assert self.transport is not None
        batch = []
        for data in self.protocol.data_to_send():
            if data is SEND_EOF or not data:
                if batch:
                    self.transport.write(ws_frame(0x2, b"".join(batch)))
                self.transport.close()
                return
            batch.append(data)
        if batch:
            self.transport.write(ws_frame(0x2, b"".join(batch)))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self.settle(f"upgrade refused: {bytes(self.buf[:12]).decode(errors='replace')}")
                assert self.transport is not None
                self.transport.close()
                return
            del self.buf[: end + 4]
            self.upgraded = True
            self.protocol.send_hello(
                venue_id=self.venue, token=self.token, session_epoch=1, bridge_version="bench"
            )
            self.flush()
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            fin, opcode, n = buf[0] & 0x80, buf[0] & 0x0F, buf[1] & 0x7F
            at = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + n:
                return
            payload = bytes(buf[at : at + n])  # the server never masks
            del buf[: at + n]
            self._frame(fin, opcode, payload)

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode in (0x0, 0x2):
            self.message += payload
            if not fin:
                return
            data, self.message = bytes(self.message), bytearray()
            try:
                self.protocol.receive_data(data)
            except Exception as exc:  # a protocol error: the CLOSE is queued, flushed below
                STATS[f"protocol error {type(exc).__name__}"] += 1
            for event in self.protocol.events_received():
                if isinstance(event, Welcome):
                    self.settle("welcomed")
                elif isinstance(event, RequestHead) and self.answer is not None:
                    self.protocol.send_response(event.stream_id, *self.answer)
                    STATS["answered"] += 1
                elif isinstance(event, BodyChunk):
                    self.protocol.consumed(event.stream_id, len(event.data))
                elif isinstance(event, Ping):
                    STATS["tunnel_pings"] += 1
                elif isinstance(event, Close):
                    self.settle(f"CLOSE {event.code}")
                    STATS[f"closed by relay ({event.code})"] += 1
            self.flush()
        elif opcode == 0x9:
            STATS["ws_pings"] += 1
            self.transport.write(ws_frame(0xA, payload))
        elif opcode == 0x8:
            self.transport.write(ws_frame(0x8, payload[:2]))
            self.transport.close()


async def open_one(
    host: str, port: int, venue: str, token: str, timeout_s: float, answer: Answer | None = None
) -> tuple[str, asyncio.BaseTransport | None]:
    loop = asyncio.get_running_loop()
    try:
        transport, bridge = await asyncio.wait_for(
            loop.create_connection(
                lambda: FakeBridge(host, port, venue, token, answer), host, port
            ),
            timeout_s,
        )
    except (OSError, TimeoutError) as exc:
        return f"connect {type(exc).__name__} {getattr(exc, 'errno', '') or ''}".strip(), None
    try:
        outcome = await asyncio.wait_for(asyncio.shield(bridge.outcome), timeout_s)
    except TimeoutError:
        outcome = "no WELCOME in time"
    return outcome, transport


async def run(job: dict[str, Any]) -> None:
    host, port = "127.0.0.1", job["port"]
    pairs = json.loads(Path(job["tokens_file"]).read_text())[
        job["first"] : job["first"] + job["count"]
    ]
    limits = raise_nofile(len(pairs) + 256)
    gate = asyncio.Semaphore(job.get("parallel", 64))
    answer = canned(job)
    outcomes: Counter[str] = Counter()
    transports: list[asyncio.BaseTransport] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(venue: str, token: str) -> None:
        async with gate:
            outcome, transport = await open_one(
                host, port, venue, token, job.get("handshake_timeout_s", 30.0), answer
            )
        outcomes[outcome] += 1
        if transport is not None:
            transports.append(transport)

    await asyncio.gather(*(one(v, t) for v, t in pairs))
    ready = {
        "outcomes": dict(outcomes),
        "nofile": limits,
        "open_s": round(loop.time() - started, 2),
    }
    sys.stdout.write("READY " + json.dumps(ready) + "\n")
    sys.stdout.flush()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.readline(), job.get("max_life_s", 600.0))
    sys.stdout.write("RESULT " + json.dumps({**ready, "stats": dict(STATS)}) + "\n")
    sys.stdout.flush()
    for transport in transports:
        transport.close()
    await asyncio.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(run(json.loads(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
