"""LOKE's four URLs answered for the tunnel without the bridge's in-process aiohttp server.

Why: a tunnelled bill fetch cost the bridge 0.57 ms of CPU against 0.39 ms for the same
fetch sent to it directly (README, relay figures): writing the request as HTTP/1.1 for
aiohttp's ``RequestHandler``, its parsing, routing and response writing, and reading that
response back (``dispatch.py``, ``http1.py``). The tunnel has already framed the request (a
method, a path, header pairs, a body ending with END_OF_BODY); a request for one of LOKE's
four URLs whose headers are all plain (``bridge/http/head.py``: tokens, visible ASCII, none
repeated, nothing that changes framing or protocol; a payment exactly ``application/json``)
goes straight to ``bridge/platforms/loke/operations.py``, the code aiohttp's routes call,
and its answer leaves in one ``send_response``. Anything else, and a body over the bridge's
limit, goes to aiohttp as before, with whatever body was already read.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.http.head import Route, loke_route, plain_headers
from bridge.tunnel.messages import RequestHead


@dataclass(frozen=True, slots=True)
class LokeCall:
    """A tunnelled request this module answers: its route, path parameters and headers."""

    route: Route
    location: str
    table: str | None
    payment_id: str | None
    headers: dict[str, str]


def recognise(head: RequestHead) -> LokeCall | None:
    """The LOKE call ``head`` asks for, or ``None``: aiohttp serves it."""
    if head.method not in ("GET", "POST"):
        return None
    route = loke_route(head.method.encode("ascii"), head.path)
    if route is None:
        return None
    headers = plain_headers(list(head.headers))
    if headers is None:
        return None
    if head.method == "POST" and headers.get("content-type") != "application/json":
        return None  # parameters, other types: aiohttp's parser and its 415
    kind, location, table, payment_id = route
    return LokeCall(kind, location, table, payment_id, headers)
