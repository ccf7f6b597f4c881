"""What the sandbox's routes find on their ``web.Application``: its state, its clock, and the
base URL it is reached at (for ``X-Next-Page``)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bridge.platforms.loke.sandbox.state import SandboxState

STATE = web.AppKey("loke_sandbox_state", SandboxState)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("loke_sandbox_clock")
#: ``None``: the origin each request was made to (``http://127.0.0.1:PORT``).
BASE_URL: web.AppKey[str | None] = web.AppKey("loke_sandbox_base_url")


def base_url(request: web.Request) -> str:
    """The sandbox's own URL as its caller reaches it, without a trailing ``/``."""
    configured = request.app[BASE_URL]
    if configured:
        return configured.rstrip("/")
    return str(request.url.origin())
