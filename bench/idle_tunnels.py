"""Fake bridges for ``bench.relay`` (b): thousands of idle tunnels to one relay, one process.

    python -m bench.idle_tunnels '{"port": N, "tunnels": [[venue, token], ...]}'

Each tunnel is a websocket (the ``websockets`` library, no compression, as the bridge dials)
carrying the real sans-I/O tunnel protocol (:class:`tunnel.protocol.TunnelProtocol`,
client side): the real HELLO with its venue's token, WELCOME, then idle, answering the relay's
PINGs. So the relay holds what a real bridge's idle tunnel costs it, without a whole bridge
per venue. The process raises its open-file limit, opens its tunnels (64 handshakes at a
time), prints ``READY {"welcomed": n, "failed": {reason: count}}`` and idles until it is
terminated.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tunnel.messages import Welcome
from tunnel.protocol import SEND_EOF, Side, TunnelProtocol

HANDSHAKE_TIMEOUT_S = 30.0


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def flush(ws: ClientConnection, protocol: TunnelProtocol) -> None:
    """What the protocol queued, as one websocket message (the bridge's writer coalesces)."""
    data = protocol.data_to_send()
    if data and data[-1] is SEND_EOF:
        await ws.close()
    elif data:
        await ws.send(b"".join(data))


async def tunnel(port: int, venue: str, token: str, welcomed: asyncio.Future[None]) -> None:
    """One tunnel until the relay closes it: HELLO, WELCOME, then PONGs to its PINGs."""
    protocol = TunnelProtocol(Side.CLIENT)
    uri = f"ws://127.0.0.1:{port}/tunnel"
    async with connect(uri, compression=None, ping_interval=None, proxy=None) as ws:
        protocol.send_hello(venue_id=venue, token=token, session_epoch=1, bridge_version="bench")
        await flush(ws, protocol)
        async for message in ws:
            protocol.receive_data(message if isinstance(message, bytes) else message.encode())
            for event in protocol.events_received():
                if isinstance(event, Welcome) and not welcomed.done():
                    welcomed.set_result(None)
            await flush(ws, protocol)  # PONGs (the protocol queues them), a CLOSE's answer


async def run(job: dict[str, Any]) -> None:
    raise_nofile(len(job["tunnels"]) + 256)
    gate = asyncio.Semaphore(64)
    outcomes: Counter[str] = Counter()
    held: list[asyncio.Task[None]] = []

    async def one(venue: str, token: str) -> None:
        async with gate:
            welcomed = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(tunnel(job["port"], venue, token, welcomed))
            done, _ = await asyncio.wait(
                [welcomed, task], timeout=HANDSHAKE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            if welcomed in done:
                outcomes["welcomed"] += 1
                held.append(task)
                return
            task.cancel()
            reason = "no WELCOME in time"
            if task in done and task.exception() is not None:
                reason = type(task.exception()).__name__
            elif task in done:
                reason = "closed before WELCOME"
            outcomes[reason] += 1

    await asyncio.gather(*(one(venue, token) for venue, token in job["tunnels"]))
    welcomed = outcomes.pop("welcomed", 0)
    sys.stdout.write("READY " + json.dumps({"welcomed": welcomed, "failed": outcomes}) + "\n")
    sys.stdout.flush()
    await asyncio.gather(*held, return_exceptions=True)  # until terminated


if __name__ == "__main__":
    asyncio.run(run(json.loads(Path(sys.argv[1]).read_text())))
