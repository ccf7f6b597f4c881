"""The relay and the bridge, both real, on 127.0.0.1: starters, a raw tunnel client, a poll.

Everything listens on real sockets; nothing of ours is mocked. Loops are bounded by
:func:`wait_until`'s deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.cli.serve import run_bridge
from bridge.config import TunnelConfig
from bridge.uplink.client import UPLINK, UplinkClient
from bridge.uplink.forward import LocalOrigin
from relay.app import Relay
from relay.config import RelayConfig, parse_relay_config
from relay.server import RelayServer, start_relay_server
from relay.venues import add_venue
from tests.conftest import make_config
from tunnel.messages import Close, Event
from tunnel.protocol import Side, TunnelProtocol

OPERATOR_TOKEN = "operator-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def relay_config(
    tmp_path: Path,
    port: int = 0,
    *,
    relay: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
    **limits: Any,
) -> RelayConfig:
    """A relay config; ``relay`` adds keys to ``[relay]``, ``limits`` go to ``[limits]``,
    ``sections`` are whole extra tables."""
    data = {
        "relay": {
            "operator_token": OPERATOR_TOKEN,
            "port": port,
            "venues_file": "venues.toml",
            **(relay or {}),
        },
        "limits": {"heartbeat_interval_s": 1.0, **limits},
        **(sections or {}),
    }
    return parse_relay_config(data, {}, tmp_path)


def add_venues(config: RelayConfig, *names: str) -> dict[str, str]:
    return {name: add_venue(config.relay.venues_file, name) for name in names}


@dataclass
class RunningRelay:
    server: RelayServer

    @property
    def relay(self) -> Relay:
        return self.server.relay

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        """As ``run_relay`` stops: tunnels closed first, then the server."""
        await self.server.close()

    @property
    def url(self) -> str:
        return f"{'https' if self.server.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def tunnel_url(self) -> str:
        return f"{'wss' if self.server.tls else 'ws'}://127.0.0.1:{self.port}/tunnel"


@contextlib.asynccontextmanager
async def running_relay(config: RelayConfig) -> AsyncIterator[RunningRelay]:
    """The relay as ``pos-bridge relay`` serves it (``start_relay_server``), on 127.0.0.1."""
    server = await start_relay_server(config, "127.0.0.1")
    try:
        yield RunningRelay(server)
    finally:
        await server.close()


def tunnel_section(url: str, venue: str, token: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "venue": venue,
        "token": token,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.5,
        "health_interval_s": 0.2,
        **extra,
    }


@contextlib.asynccontextmanager
async def running_bridge(
    tmp_path: Path, tunnel: dict[str, Any], **sections: Any
) -> AsyncIterator[UplinkClient]:
    """The whole bridge (``run_bridge``, simulated POS) dialling the relay; ``sections``
    override whole config tables (``drivers=…``)."""
    config = make_config(tmp_path, tunnel=tunnel, server={"port": 0}, **sections)
    stop = asyncio.Event()
    started: asyncio.Future[UplinkClient] = asyncio.get_running_loop().create_future()

    async def ready(runner: web.AppRunner, port: int) -> None:
        started.set_result(runner.app[UPLINK])

    task = asyncio.create_task(run_bridge(config, ready=ready, stop=stop))
    try:
        uplink = await asyncio.wait_for(asyncio.shield(started), 10)
        yield uplink
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def relay_and_bridge(
    tmp_path: Path, venue: str = "cafe-a", *, limits: dict[str, Any] | None = None, **sections: Any
) -> AsyncIterator[tuple[RunningRelay, UplinkClient]]:
    """One relay (its ``[limits]`` overridden by ``limits``) with ``venue`` added, and the
    whole bridge (``sections`` as in :func:`running_bridge`) dialling it as that venue, once
    the relay holds its tunnel."""
    config = relay_config(tmp_path / "relay", **(limits or {}))
    token = add_venues(config, venue)[venue]
    async with running_relay(config) as relay:
        tunnel = tunnel_section(relay.tunnel_url, venue, token)
        async with running_bridge(tmp_path, tunnel, **sections) as uplink:
            await wait_until(lambda: relay.relay.registry.get(venue) is not None)
            yield relay, uplink


@contextlib.asynccontextmanager
async def running_uplink(
    tmp_path: Path, local: LocalOrigin, tunnel: dict[str, Any]
) -> AsyncIterator[UplinkClient]:
    """Only the tunnel client, forwarding to some other local app (a test echo app)."""
    if "urls" in tunnel:  # the file's form: urls, or url (the first of them), not both
        tunnel = {k: v for k, v in tunnel.items() if k != "url"}
    config = TunnelConfig.model_validate(tunnel)
    uplink = UplinkClient(config, epoch_file=tmp_path / "tunnel-epoch")
    uplink.serving(local)
    task = asyncio.create_task(uplink.run())
    try:
        yield uplink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def serving_runner(app: web.Application) -> AsyncIterator[tuple[web.AppRunner, LocalOrigin]]:
    """A local app on 127.0.0.1 for a tunnel client to forward to, as the bridge's own
    listener is; its handlers are cancelled when their client goes away."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner, LocalOrigin("127.0.0.1", runner.addresses[0][1])
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[LocalOrigin]:
    """As :func:`serving_runner`, the listener's address only."""
    async with serving_runner(app) as (_, origin):
        yield origin


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0, step_s: float = 0.02
) -> float:
    """Poll ``check`` until true; return the seconds it took. Fails past ``timeout_s``."""
    start = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(step_s)


@dataclass
class RawTunnel:
    """A hand-driven tunnel client: the real protocol over a real websocket."""

    ws: aiohttp.ClientWebSocketResponse
    protocol: TunnelProtocol

    async def send(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await self.ws.send_bytes(data)

    async def events(self, timeout_s: float = 5.0) -> list[Event]:
        """Events from the next binary message; ``[]`` when the websocket closes."""
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.BINARY:
                    self.protocol.receive_data(msg.data)
                    await self.send()
                    return self.protocol.events_received()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return []

    async def close_received(self, timeout_s: float = 5.0) -> Close | None:
        """Read (answering PINGs) until the peer's CLOSE, or ``None`` if the socket ends."""
        async with asyncio.timeout(timeout_s):
            while events := await self.events():
                for event in events:
                    if isinstance(event, Close):
                        return event
        return None


@contextlib.asynccontextmanager
async def raw_tunnel(
    url: str, venue: str, token: str, epoch: int
) -> AsyncIterator[tuple[RawTunnel, list[Event]]]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, autoclose=False) as ws,
    ):
        tunnel = RawTunnel(ws, TunnelProtocol(Side.CLIENT))
        tunnel.protocol.send_hello(
            venue_id=venue, token=token, session_epoch=epoch, bridge_version="test"
        )
        await tunnel.send()
        yield tunnel, await tunnel.events()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
