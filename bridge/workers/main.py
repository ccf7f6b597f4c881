"""A worker process: ``python -m bridge.workers.main LISTEN_FD CHANNEL_FD OWNER_SOCKET``.

Started only by the owner (``bridge/workers/pool.py``), which passes the listening socket
and its end of the channel as inherited descriptors and the configuration, pickled, on
standard input (the owner may have been built from a ``Config`` that has no file). The
listener answers LOKE's URLs on its fast path (``fastpath.py``) and hands every other
connection to the worker's aiohttp application (``app.py``).

Stopping: SIGTERM or SIGINT stops accepting, lets requests in flight finish, and exits. A
dropped channel means the owner died: the worker exits at once, with whatever it held, so a
restarted owner can bind the port again; a platform whose request was cut retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import sys

from aiohttp import web

from bridge import collector
from bridge.config import Config
from bridge.logs import configure_logging
from bridge.workers.app import create_worker_app
from bridge.workers.client import OwnerChannel, OwnerLokeBackend
from bridge.workers.fastpath import loke_listener

logger = logging.getLogger("bridge.workers")

#: The exit status of a worker whose owner went away.
OWNER_GONE_EXIT = 75
#: Seconds a stopping worker waits for its fast-path answers in flight.
SHUTDOWN_S = 10.0


async def serve_worker(config: Config, listen_fd: int, channel_fd: int, owner_socket: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def owner_gone() -> None:
        logger.error("worker %d: the owner process is gone; exiting", os.getpid())
        os._exit(OWNER_GONE_EXIT)

    channel = await OwnerChannel.connect(socket.socket(fileno=channel_fd), owner_gone)
    runner = web.AppRunner(
        create_worker_app(config, channel, owner_socket), access_log=None, handle_signals=False
    )
    await runner.setup()
    assert runner.server is not None  # made by setup()
    backend = OwnerLokeBackend(config.locations, channel)
    fast = loke_listener(backend, runner.server, config.server.max_body_bytes)
    server = await loop.create_server(fast.protocol, sock=socket.socket(fileno=listen_fd))
    try:
        channel.hello()
        collector.settle()
        await stop.wait()
    finally:
        server.close()
        await fast.shutdown(SHUTDOWN_S)
        await runner.cleanup()


def main(argv: list[str]) -> int:
    from bridge.cli import event_loop_factory

    listen_fd, channel_fd, owner_socket = int(argv[0]), int(argv[1]), argv[2]
    config: Config = pickle.load(sys.stdin.buffer)
    configure_logging(config)
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        runner.run(serve_worker(config, listen_fd, channel_fd, owner_socket))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
