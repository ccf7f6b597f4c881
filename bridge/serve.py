"""Running the bridge until told to stop (systemd, launchd, a Windows service, a terminal).

Signal handlers only set an event; the main coroutine then shuts the app down in order. With
``[server] workers`` above 0, this process is the owner: it binds the port for its HTTP
workers (``bridge/workers/pool.py``), serves its own application only on a private Unix
socket (what the workers forward there) and to the tunnel, and stops the workers first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from bridge.app import create_app
from bridge.config import Config
from bridge.platforms.loke.backend import LOKE_BACKEND
from bridge.uplink.client import UPLINK
from bridge.uplink.dispatch import LocalServer
from bridge.workers.pool import WorkerPool

logger = logging.getLogger(__name__)

#: How long a new owner waits for the port while the workers of a killed one exit.
BIND_RETRY_S = 10.0


async def run_bridge(
    config: Config,
    *,
    ready: Callable[[web.AppRunner, int], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``config`` until ``stop`` is set or SIGTERM/SIGINT arrives.

    Args:
        ready: awaited once the port is bound (and every worker serves), with the runner and
            the actual port.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: the service wrapper stops us
            loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        async with _listening(runner, config, stop) as port:
            logger.info("bridge listening on http://%s:%d", config.server.host, port)
            if (uplink := runner.app.get(UPLINK)) is not None:
                host = config.server.host
                host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
                uplink.serving(LocalServer(runner, host, port))
            if ready is not None:
                await ready(runner, port)
            await stop.wait()
            logger.info("stopping")
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _listening(
    runner: web.AppRunner, config: Config, stop: asyncio.Event
) -> AsyncIterator[int]:
    """The port served: by this process, or by its workers (stopped on the way out)."""
    server = config.server
    if not server.workers:
        site = web.TCPSite(runner, server.host, server.port, reuse_address=True)
        await site.start()
        yield runner.addresses[0][1]
        return
    listener = await _bind(server.host, server.port)
    folder = tempfile.mkdtemp(prefix="pos-bridge-")  # 0700: only this user reaches the owner
    owner_socket = os.path.join(folder, "owner.sock")
    try:
        await web.UnixSite(runner, owner_socket).start()
        backend = runner.app[LOKE_BACKEND]
        pool = WorkerPool(config, listener, owner_socket, backend, server.workers, stop)
        await pool.start()
        logger.info("%d HTTP worker(s) serving: pids %s", server.workers, pool.pids)
        try:
            yield listener.getsockname()[1]
        finally:
            await pool.stop()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            Path(owner_socket).unlink()
        with contextlib.suppress(OSError):
            os.rmdir(folder)


async def _bind(host: str, port: int) -> socket.socket:
    """The workers' listening socket; waits (bounded) while a dead owner's workers exit."""
    deadline = asyncio.get_running_loop().time() + BIND_RETRY_S
    while True:
        try:
            return socket.create_server((host, port), backlog=1024)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
