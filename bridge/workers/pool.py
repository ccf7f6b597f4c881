"""The owner's HTTP workers: started, kept running, and stopped before the owner stops.

Why processes: one Python process runs on one core, and under load the bridge's event loop
is the limit while the disk is not (``docs/scaling.md``). Workers take each platform
request's HTTP handling, auth, parsing and rendering onto other cores; the owner keeps what
exactly-once rests on, one of each: the database writer, the bill locks, the POS link.

The owner binds the listening socket and every worker inherits it, so the port never closes
while a worker restarts (connections wait in the backlog). Each worker gets a socket pair for
its channel (``frames.py``) and the configuration on standard input. A worker that dies is
started again (after 0.1 s, doubling while it keeps dying young, up to 5 s); on stop, workers
get SIGTERM, finish what they carry, and are killed if they take longer than ``grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import socket
import sys
import time
from asyncio.subprocess import Process

from bridge.config import Config
from bridge.platforms.loke.backend import LokeBackend
from bridge.workers.owner import OwnerEndpoint

logger = logging.getLogger(__name__)

#: A worker that ran this long before dying restarts after the shortest delay again.
STABLE_S = 10.0
RESTART_MIN_S = 0.1
RESTART_MAX_S = 5.0


class WorkerStartError(RuntimeError):
    """A worker did not say it serves within the start timeout."""


class WorkerPool:
    def __init__(
        self,
        config: Config,
        listener: socket.socket,
        owner_socket: str,
        backend: LokeBackend,
        count: int,
        stopping: asyncio.Event,
    ) -> None:
        self._config = pickle.dumps(config)
        self._listener = listener
        self._owner_socket = owner_socket
        self._backend = backend
        self._count = count
        self._stopping = stopping  # set when the owner stops: a worker's exit is then no death
        self._slots: list[asyncio.Task[None]] = []
        self._processes: dict[int, Process] = {}
        self._serving: list[asyncio.Event] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes.values() if p.returncode is None]

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start every worker; return once each serves (or the owner is told to stop).

        Raises:
            WorkerStartError: one did not within ``timeout_s``.
        """
        for slot in range(self._count):
            serving = asyncio.Event()
            self._serving.append(serving)
            task = asyncio.create_task(self._keep(slot, serving), name=f"worker-{slot}")
            self._slots.append(task)
        ready = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in self._serving)))
        stopping = asyncio.ensure_future(self._stopping.wait())  # a stop during the start
        done, _ = await asyncio.wait(
            (ready, stopping), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        stopping.cancel()
        if not done:
            await self.stop()
            raise WorkerStartError(f"HTTP workers did not start within {timeout_s:g} s")

    async def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every worker, wait for them to finish, kill any still running after
        ``grace_s``."""
        self._stopping.set()  # before the signals: no worker is started again from here
        running = [p for p in self._processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        if running:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in running], timeout=grace_s)
        for task in self._slots:
            task.cancel()
        for task in self._slots:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for process in self._processes.values():  # late, or started while this began
            if process.returncode is None:
                logger.warning("HTTP worker %d did not stop in time; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def _keep(self, slot: int, serving: asyncio.Event) -> None:
        """Run worker ``slot``, and again whenever it dies, until the pool stops."""
        delay = RESTART_MIN_S
        while not self._stopping.is_set():
            started = time.monotonic()
            returncode = await self._run_once(slot, serving)
            delay = RESTART_MIN_S if time.monotonic() - started > STABLE_S else delay
            # A signal to the whole process group (a terminal's Ctrl-C, systemd's stop) reaches
            # a worker as soon as the owner: the pause lets the owner's own stop be seen first.
            await asyncio.sleep(delay)
            if self._stopping.is_set():
                return
            logger.error("HTTP worker %d exited (status %s); starting it again", slot, returncode)
            delay = min(delay * 2, RESTART_MAX_S)

    async def _run_once(self, slot: int, serving: asyncio.Event) -> int:
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        try:
            fds = (self._listener.fileno(), theirs.fileno())
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge.workers.main",
                str(fds[0]),
                str(fds[1]),
                self._owner_socket,
                stdin=asyncio.subprocess.PIPE,
                pass_fds=fds,
            )
        finally:
            theirs.close()
        self._processes[slot] = process
        transport, _ = await loop.create_unix_connection(
            lambda: OwnerEndpoint(self._backend, serving.set), sock=ours
        )
        try:
            assert process.stdin is not None
            process.stdin.write(self._config)
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
            process.stdin.close()
            logger.info("HTTP worker %d started (pid %d)", slot, process.pid)
            return await process.wait()
        finally:
            transport.close()
