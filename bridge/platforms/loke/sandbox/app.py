"""The LOKE sandbox as one aiohttp application: the platform API, the ``/_sandbox/``
controls and the OIDC issuer, over one :class:`SandboxState`.

``start_sandbox`` serves it on a real socket for the CLI (``pos-bridge loke-sandbox``), the
demo and the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from bridge.platforms.loke.sandbox import controls, platform_api
from bridge.platforms.loke.sandbox.errors import loke_errors
from bridge.platforms.loke.sandbox.issuer import add_issuer
from bridge.platforms.loke.sandbox.keys import BASE_URL, CLOCK, STATE
from bridge.platforms.loke.sandbox.state import SandboxState


def create_sandbox_app(
    state: SandboxState,
    *,
    clock: Callable[[], float] = time.time,
    base_url: str | None = None,
) -> web.Application:
    """``base_url``: how callers reach the sandbox (``X-Next-Page`` starts with it); ``None``:
    the origin of each request."""
    app = web.Application(middlewares=[loke_errors])
    app[STATE] = state
    app[CLOCK] = clock
    app[BASE_URL] = base_url
    app.add_routes(platform_api.routes)
    app.add_routes(controls.routes)
    add_issuer(app, state, clock)
    return app


async def start_sandbox(
    host: str, port: int, state: SandboxState, *, clock: Callable[[], float] = time.time
) -> tuple[web.AppRunner, str]:
    """Serve the sandbox on ``host:port`` (0: any free port); returns the runner (``await
    runner.cleanup()`` stops it) and the base URL it answers at, without a trailing ``/``."""
    runner = web.AppRunner(create_sandbox_app(state, clock=clock), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}"
