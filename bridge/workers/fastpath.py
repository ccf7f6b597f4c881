"""A worker's listener: LOKE's four URLs answered here, every other request handed to aiohttp.

Why: aiohttp's web layer was about half of a worker's CPU per payment (``docs/scaling.md``).
Requests are read by ``bridge/http/head.py`` (LOKE's URLs in a narrow, unambiguous form of
HTTP/1.1); one it recognises goes to ``bridge/platforms/loke/operations.py``, the same code
aiohttp's routes call, and its :class:`~bridge.answers.Answer` is written back as bytes.
Everything else (the technician's API, odd requests, aiohttp's own 4xx) is handed to the
worker's aiohttp application with the connection (``bridge/http/fastconn.py``). A payment
whose caller hangs up is still taken (the owner finishes it); only its answer is dropped.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from bridge.http.fastconn import KEEPALIVE_S, FastConnection, FastListener, encode_answer
from bridge.http.head import FastRequest, read_request
from bridge.platforms.loke import operations
from bridge.platforms.loke.backend import LokeBackend


def loke_listener(
    backend: LokeBackend,
    aiohttp_server: web.Server,
    max_body: int,
    keepalive_s: float = KEEPALIVE_S,
) -> FastListener[FastRequest]:
    """The listener's connections: LOKE's URLs answered by ``backend``, the rest aiohttp's."""

    def serve(connection: FastConnection[FastRequest], request: FastRequest) -> None:
        connection.spawn(respond(connection, request), request)

    async def respond(connection: FastConnection[FastRequest], request: FastRequest) -> None:
        answer = await operations.answer(
            backend,
            request.route,
            request.location,
            request.table,
            request.payment_id,
            request.headers,
            request.body,
        )
        connection.write(encode_answer(answer, request.close))

    return FastListener(
        aiohttp_server, partial(read_request, max_body=max_body), serve, keepalive_s
    )
