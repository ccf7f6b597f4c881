"""The relay's Prometheus metrics, served at ``GET /metrics`` (text exposition format).

Built on ``prometheus_client`` with a registry of the relay's own (not the library's global
one), so several relays in one process (tests) keep their counts apart.

- ``relay_tunnels_connected``: venues with a live tunnel on this relay;
- ``relay_requests_total{venue,status_class}``: public ``/v/…`` requests by final status
  class (``2xx``…``5xx``); a venue not in the venues file counts as ``venue="_unknown"`` so a
  scanner cannot grow the label set;
- ``relay_request_duration_seconds``: from the request's arrival to its last response byte;
- ``relay_bytes_total{direction}``: body bytes relayed, ``request`` (platform to venue) and
  ``response``;
- ``relay_nats_routed_requests_total{status_class}``: requests this relay routed over NATS
  to the relay holding the venue (counted in ``app._forward``).

``/metrics`` wants the operator token unless ``relay.metrics_public = true``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bridge.errors import ApiError, UnauthorizedError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Counter children kept for reuse, at most (one per venue and status class in use).
MAX_CACHED_CHILDREN = 10_000
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RelayMetrics:
    def __init__(
        self, tunnels: Callable[[], int], known_venue: Callable[[str], bool], operator_token: str
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._known_venue = known_venue
        self._operator_token = operator_token
        self.tunnels = Gauge(
            "relay_tunnels_connected", "Venues with a live tunnel", registry=self.registry
        )
        self.tunnels.set_function(lambda: float(tunnels()))
        self.requests = Counter(
            "relay_requests",
            "Public requests by venue and final status class",
            ["venue", "status_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "relay_request_duration_seconds",
            "Public requests, arrival to last response byte",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.bytes = Counter(
            "relay_bytes", "Body bytes relayed", ["direction"], registry=self.registry
        )
        self._request_bytes = self.bytes.labels("request")
        self._response_bytes = self.bytes.labels("response")
        self._children: dict[tuple[str, int], Counter] = {}
        self.routed = Counter(
            "relay_nats_routed_requests",
            "Requests routed over NATS to the relay holding the venue",
            ["status_class"],
            registry=self.registry,
        )

    def observe(
        self, request: web.Request, status: int, response: web.StreamResponse | None, began: float
    ) -> None:
        venue = request.match_info.get("venue", "")
        label = venue if self._known_venue(venue) else "_unknown"
        key = (label, status // 100)
        child = self._children.get(key)
        if child is None:  # labels() takes a lock and builds a key: once per label pair
            if len(self._children) >= MAX_CACHED_CHILDREN:
                self._children.clear()
            child = self._children[key] = self.requests.labels(label, f"{status // 100}xx")
        child.inc()
        self.duration.observe(time.monotonic() - began)
        if total := request.content.total_bytes:
            self._request_bytes.inc(total)
        if response is not None:
            # A Response not yet written (the relay's whole-answer path) has no body_length.
            size = response.body_length
            if not size and isinstance(response, web.Response) and not response.prepared:
                size = response.content_length or 0
            if size:
                self._response_bytes.inc(size)

    def middleware(self) -> Middleware:
        @web.middleware
        async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.raw_path.startswith("/v/"):
                return await handler(request)
            began = time.monotonic()
            try:
                response = await handler(request)
            except ApiError as exc:
                self.observe(request, exc.status, None, began)
                raise
            except web.HTTPException as exc:
                self.observe(request, exc.status, None, began)
                raise
            except BaseException:
                self.observe(request, 500, None, began)
                raise
            self.observe(request, response.status, response, began)
            return response

        return metrics_middleware

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``; ``public`` set on the route skips the operator token."""
        if not request.app.get(METRICS_PUBLIC, False):
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(presented.encode(), self._operator_token.encode()):
                raise UnauthorizedError("unauthorized", "the operator token is missing or wrong")
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


METRICS_PUBLIC = web.AppKey("metrics_public", bool)
