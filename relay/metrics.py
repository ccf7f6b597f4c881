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
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from common.errors import ApiError, UnauthorizedError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DURATION = "relay_request_duration_seconds"


class _Traffic(Collector):
    """The per-request series (requests, duration, bytes) as plain numbers, turned into metric
    families only when ``/metrics`` is scraped.

    Why not ``prometheus_client``'s ``Counter`` and ``Histogram``: their ``inc`` and
    ``observe`` take a lock each, and the histogram walks its buckets in Python, on every
    request: 1.6 % of the relay's instructions per relayed request (761k → 749k, callgrind).
    Here a request is a dict update and a bisect. No lock is needed: requests and scrapes
    both run on the event loop's thread. The exposition is the same, ``_created`` included.
    """

    def __init__(self) -> None:
        self.created = time.time()
        #: (venue label, status // 100) → [count, created]
        self.requests: dict[tuple[str, int], list[float]] = {}
        self.buckets = [0] * (len(_BUCKETS) + 1)  # the last one is +Inf
        self.duration_sum = 0.0
        self.request_bytes = 0
        self.response_bytes = 0

    def count(self, label: str, status_class: int, seconds: float) -> None:
        entry = self.requests.get((label, status_class))
        if entry is None:
            entry = self.requests[(label, status_class)] = [0, time.time()]
        entry[0] += 1
        self.buckets[bisect_left(_BUCKETS, seconds)] += 1  # le: the first bound >= seconds
        self.duration_sum += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "relay_requests",
            "Public requests by venue and final status class",
            labels=["venue", "status_class"],
        )
        for (venue, status_class), (n, created) in self.requests.items():
            requests.add_metric([venue, f"{status_class}xx"], n, created=created)
        yield requests
        duration = Metric(_DURATION, "Public requests, arrival to last response byte", "histogram")
        total = 0
        for bound, n in zip([*map(floatToGoString, _BUCKETS), "+Inf"], self.buckets, strict=True):
            total += n
            duration.add_sample(f"{_DURATION}_bucket", {"le": bound}, total)
        duration.add_sample(f"{_DURATION}_count", {}, total)
        duration.add_sample(f"{_DURATION}_sum", {}, self.duration_sum)
        duration.add_sample(f"{_DURATION}_created", {}, self.created)
        yield duration
        sizes = CounterMetricFamily("relay_bytes", "Body bytes relayed", labels=["direction"])
        sizes.add_metric(["request"], self.request_bytes, created=self.created)
        sizes.add_metric(["response"], self.response_bytes, created=self.created)
        yield sizes


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
        self.traffic = _Traffic()
        self.registry.register(self.traffic)
        self.routed = Counter(
            "relay_nats_routed_requests",
            "Requests routed over NATS to the relay holding the venue",
            ["status_class"],
            registry=self.registry,
        )

    def observe(
        self, venue: str, status: int, request_bytes: int, response_bytes: int, began: float
    ) -> None:
        """One public request done: its venue (``_unknown`` if not registered), status class,
        duration since ``began`` (monotonic) and body sizes."""
        label = venue if self._known_venue(venue) else "_unknown"
        traffic = self.traffic
        traffic.count(label, status // 100, time.monotonic() - began)
        traffic.request_bytes += request_bytes
        traffic.response_bytes += response_bytes

    def _observe(
        self, request: web.Request, status: int, response: web.StreamResponse | None, began: float
    ) -> None:
        size = 0
        if response is not None:
            # A Response not yet written (the relay's whole-answer path) has no body_length.
            size = response.body_length
            if not size and isinstance(response, web.Response) and not response.prepared:
                size = response.content_length or 0
        venue = request.match_info.get("venue", "")
        self.observe(venue, status, request.content.total_bytes, size, began)

    def middleware(self) -> Middleware:
        @web.middleware
        async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.rel_url.raw_path.startswith("/v/"):
                return await handler(request)
            began = time.monotonic()
            try:
                response = await handler(request)
            except ApiError as exc:
                self._observe(request, exc.status, None, began)
                raise
            except web.HTTPException as exc:
                self._observe(request, exc.status, None, began)
                raise
            except BaseException:
                self._observe(request, 500, None, began)
                raise
            self._observe(request, response.status, response, began)
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
