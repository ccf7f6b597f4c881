"""The relay's listener and its life: ``start_relay_server`` and ``run_relay``.

Why its own module: the command (``pos-bridge relay``), the demo and the tests all start the
relay the same way, aiohttp's ``AppRunner`` on one TCP listener (every public byte is read by
aiohttp's parser), and stop it in the same order: tunnels closed first (GOING_AWAY, websocket
1001), then the listener, then the requests in flight, then aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from relay.app import RELAY, Relay, close_tunnels, create_relay_app
from relay.config import RelayConfig
from tunnel.asyncio import CLOSE_TIMEOUT_S

logger = logging.getLogger(__name__)


@dataclass
class RelayServer:
    """A listening relay: its application, aiohttp's runner and the listening server."""

    app: web.Application
    runner: web.AppRunner
    server: asyncio.Server
    port: int
    tls: bool

    @property
    def relay(self) -> Relay:
        return self.app[RELAY]

    async def close(self, tunnel_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Tunnels closed first (their bridges reconnect elsewhere), then no new connections,
        then aiohttp's connections, the requests in flight and cleanup."""
        try:
            await close_tunnels(self.app, tunnel_timeout_s)
            self.server.close()
        finally:
            await self.runner.cleanup()


async def start_relay_server(
    config: RelayConfig, host: str | None = None, port: int | None = None
) -> RelayServer:
    """Build the relay (``create_relay_app``) and listen on ``host``:``port`` (the config's
    unless given; port 0 picks a free one), with TLS when the config has a certificate."""
    app = create_relay_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        assert runner.server is not None  # made by setup()
        ssl_context = config.relay.ssl_context()
        server = await asyncio.get_running_loop().create_server(
            runner.server,
            config.relay.host if host is None else host,
            config.relay.port if port is None else port,
            reuse_address=True,
            backlog=128,
            ssl=ssl_context,
        )
    except BaseException:
        await runner.cleanup()
        raise
    bound = server.sockets[0].getsockname()[1]
    return RelayServer(app, runner, server, bound, ssl_context is not None)


async def run_relay(
    config: RelayConfig,
    *,
    ready: Callable[[web.AppRunner, int], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the relay until ``stop`` is set or SIGTERM/SIGINT arrives; tunnels are closed
    (GOING_AWAY, 1001) before the server stops."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    relay = await start_relay_server(config)
    try:
        scheme = "https" if relay.tls else "http"
        logger.info("relay listening on %s://%s:%d", scheme, config.relay.host, relay.port)
        if ready is not None:
            await ready(relay.runner, relay.port)
        started = time.monotonic()
        await stop.wait()
        logger.info("relay stopping after %.0f s", time.monotonic() - started)
    finally:
        await relay.close()
