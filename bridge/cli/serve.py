"""Running the bridge until told to stop (systemd, launchd, a Windows service, a terminal).

Signal handlers only set an event; the main coroutine then shuts the app down in order. One
process serves HTTP: aiohttp's ``TCPSite``. The tunnel client forwards what the relay sends
to that same listener (``bridge/uplink/forward.py``), so it is told the address once bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.app import create_app
from bridge.config import Config
from bridge.uplink.client import UPLINK
from bridge.uplink.forward import LocalOrigin

logger = logging.getLogger(__name__)


async def run_bridge(
    config: Config,
    *,
    ready: Callable[[web.AppRunner, int], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``config`` until ``stop`` is set or SIGTERM/SIGINT arrives.

    Args:
        ready: awaited once the port is bound, with the runner and the actual port.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Windows (NotImplementedError): the service wrapper stops us; a loop outside the
        # main thread (RuntimeError): whoever runs it sets ``stop``.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    # handler_cancellation stays off (aiohttp's default): a handler whose client went away,
    # a platform's or the tunnel's forwarder's, still runs to its end, so a payment is
    # recorded and answered for the platform's retry.
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        server = config.server
        site = web.TCPSite(runner, server.host, server.port, reuse_address=True)
        await site.start()
        port = runner.addresses[0][1]
        logger.info("bridge listening on http://%s:%d", server.host, port)
        if (uplink := runner.app.get(UPLINK)) is not None:
            host = server.host
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            uplink.serving(LocalOrigin(host, port))
        if ready is not None:
            await ready(runner, port)
        await stop.wait()
        logger.info("stopping")
    finally:
        await runner.cleanup()
