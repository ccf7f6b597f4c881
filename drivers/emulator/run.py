"""Running the emulator: a simulator, one protocol server, and the control API.

Each wire protocol has a server module with ``serve(url, pos)``, an async context manager
that listens (or opens a pty, or watches a folder) and yields the URL a bridge should use.
They are imported only when asked for, by scheme.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from aiohttp import web

from drivers.base import DriverSettings
from drivers.emulator.control import control_app
from drivers.emulator.pos import EmulatedPos
from drivers.simulator.driver import SimulatorDriver

#: scheme → "module:function" of its server.
SERVERS: dict[str, str] = {
    "serial": "drivers.emulator.serial_server:serve",
    "tcp": "drivers.emulator.tcp_server:serve",
    "file": "drivers.emulator.file_server:serve",
}

ServeFunction = Callable[[SplitResult, EmulatedPos], AbstractAsyncContextManager[str]]


def server_for(scheme: str) -> ServeFunction:
    if scheme not in SERVERS:
        raise ValueError(f"no emulator for {scheme!r} (known: {', '.join(sorted(SERVERS))})")
    module, _, name = SERVERS[scheme].partition(":")
    serve: ServeFunction = getattr(importlib.import_module(module), name)
    return serve


def make_pos(state: Path | None, *, tables: int = 20, seed: int = 1) -> EmulatedPos:
    """An emulated POS over a simulator kept in ``state`` (or in memory)."""
    url = urlsplit(f"simulator://{state.resolve()}" if state else "simulator:")
    options: dict[str, Any] = {"tables": tables, "seed": seed}
    return EmulatedPos(SimulatorDriver(DriverSettings("emulator", url, options)), seed=seed)


@asynccontextmanager
async def running_emulator(
    url: str, pos: EmulatedPos, *, control_port: int | None = None
) -> AsyncIterator[tuple[str, str | None]]:
    """Serve ``pos`` on ``url``; yields (the bridge's driver URL, the control API's URL)."""
    parts = urlsplit(url)
    await pos.simulator.open()
    runner: web.AppRunner | None = None
    try:
        control_url = None
        if control_port is not None:
            runner = web.AppRunner(control_app(pos), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", control_port).start()
            control_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with server_for(parts.scheme)(parts, pos) as bridge_url:
            yield bridge_url, control_url
    finally:
        if runner is not None:
            await runner.cleanup()
        await pos.simulator.close()


async def run_forever(url: str, pos: EmulatedPos, control_port: int | None) -> None:
    """The CLI's ``pos-emulator``: print where to connect, then serve until cancelled."""
    async with running_emulator(url, pos, control_port=control_port) as (bridge_url, control):
        print(f"POS emulator ready: driver url = {bridge_url}", flush=True)
        if control:
            print(f"control API: {control}/faults", flush=True)
        await asyncio.Event().wait()
