"""Every URL a worker does not serve itself goes to the owner's own HTTP server, as it came.

Why: the technician's API, status, audit trails and the OpenAPI document are the owner's
(its store, its drivers, its simulator), are called rarely, and must behave exactly as with
no workers. The owner serves its whole application on a Unix socket only this user can open
(``bridge/workers/pool.py``); a worker forwards the request there, hop-by-hop headers
dropped, and sends back what it answered.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from bridge.http.headers import HOP_BY_HOP, end_to_end
from bridge.workers.client import OwnerGoneError

_NOT_RETURNED = HOP_BY_HOP | {b"content-length"}

OWNER_SESSION = web.AppKey("owner_session", aiohttp.ClientSession)


def _multidict(pairs: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    return CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs)


async def forward_to_owner(request: web.Request) -> web.Response:
    """Relay ``request`` to the owner's server and its answer back."""
    session = request.app[OWNER_SESSION]
    body = await request.read()
    try:
        async with session.request(
            request.method,
            f"http://owner{request.raw_path}",
            headers=_multidict(end_to_end(request.raw_headers)),
            data=body,
            allow_redirects=False,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        ) as answer:
            payload = await answer.read()
            headers = _multidict(end_to_end(answer.raw_headers, _NOT_RETURNED))
            return web.Response(status=answer.status, body=payload, headers=headers)
    except aiohttp.ClientError as exc:
        raise OwnerGoneError() from exc


def owner_session(socket_path: str) -> aiohttp.ClientSession:
    """Keep-alive connections to the owner's Unix socket; no cookies, no timeouts of its own
    (the owner's POS deadlines bound every answer)."""
    return aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=socket_path),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
    )
