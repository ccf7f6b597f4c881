"""A worker's application: LOKE's URLs served here, every other URL forwarded to the owner.

A worker holds no payment state: it checks the caller, parses and validates, computes the
fingerprint, and lets the owner take the operation (``bridge/workers/client.py``). It can be
killed at any moment; a payment it was carrying is the owner's already, or never arrived.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bridge.config import Config
from bridge.http.middleware import error_middleware
from bridge.platforms.loke import routes as loke_routes
from bridge.platforms.loke.backend import LOKE_BACKEND
from bridge.workers.client import OwnerChannel, OwnerLokeBackend
from bridge.workers.proxy import OWNER_SESSION, forward_to_owner, owner_session


def create_worker_app(config: Config, channel: OwnerChannel, owner_socket: str) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.server.max_body_bytes
    )
    app[LOKE_BACKEND] = OwnerLokeBackend(config.locations, channel)

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[OWNER_SESSION] = owner_session(owner_socket)
        yield
        await app[OWNER_SESSION].close()

    app.cleanup_ctx.append(session)
    app.add_routes(loke_routes.routes)
    app.router.add_route("*", "/{tail:.*}", forward_to_owner)  # last: only what LOKE's miss
    return app
