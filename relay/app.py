"""The relay's composition root, ``create_relay_app(config)``, and its tunnel endpoint.

Routes: ``/v/{venue}/{path}`` (the public URL map, ``proxy.py``; rate-limited per venue,
``ratelimit.py``), ``/tunnel`` (bridges dial in here), ``/venues/{venue}/health`` (operator
token), ``/metrics`` (Prometheus, ``metrics.py``), ``/healthz``.

The tunnel endpoint is aiohttp's own ``WebSocketResponse``: the relay is an aiohttp app
already, so one server, one event loop and one shutdown sequence serve both the platforms'
HTTP and the bridges' websockets (the ``websockets`` library would need a second listener).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from common.errors import ApiError, NotFoundError, UnauthorizedError
from common.middleware import error_middleware
from relay.cluster import Cluster
from relay.config import RelayConfig
from relay.metrics import METRICS_PUBLIC, RelayMetrics
from relay.proxy import forward
from relay.ratelimit import HelloGuard, VenueRateLimiter
from relay.registry import Registry, Slots, VenueLink
from relay.venues import VenueTokens
from tunnel.asyncio import CLOSE_TIMEOUT_S, TunnelConnection, TunnelGoneError
from tunnel.errors import CloseCode, TunnelProtocolError
from tunnel.messages import MAX_MAX_FRAME_BYTES, Hello, Limits
from tunnel.protocol import Side, TunnelProtocol

logger = logging.getLogger(__name__)

#: Slack over the coalescing size for the websocket's own limit on what it receives.
_MESSAGE_SLACK_BYTES = 64 * 1024


@dataclass
class Relay:
    config: RelayConfig
    tokens: VenueTokens
    registry: Registry = field(default_factory=Registry)
    connections: weakref.WeakSet[TunnelConnection] = field(default_factory=weakref.WeakSet)
    #: Superseded tunnels being closed in the background (kept so the tasks are not lost).
    closing: set[asyncio.Task[None]] = field(default_factory=set)
    #: The NATS side when ``[nats]`` is configured; ``None`` for a lone relay.
    cluster: Cluster | None = None
    requests: VenueRateLimiter = field(init=False)
    hellos: HelloGuard = field(init=False)
    metrics: RelayMetrics = field(init=False)

    def __post_init__(self) -> None:
        rates = self.config.rate_limit
        self.requests = VenueRateLimiter(rates.requests_per_s, rates.burst)
        self.hellos = HelloGuard(rates.hello_failures, rates.hello_window_s)
        self.metrics = RelayMetrics(
            lambda: len(self.registry.links()), self._known_venue, self.config.relay.operator_token
        )

    def _known_venue(self, venue: str) -> bool:
        """A venue with a live tunnel passed its token check: no need to stat the venues
        file for it on every request."""
        return self.registry.get(venue) is not None or self.tokens.known(venue)

    def close_in_background(self, conn: TunnelConnection, code: int, reason: str) -> None:
        task = asyncio.create_task(conn.close(code, reason, 1000))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    def wire_limits(self) -> Limits:
        limits = self.config.limits
        frame = min(64 * 1024, limits.max_message_bytes // 2, MAX_MAX_FRAME_BYTES)
        return Limits(
            max_frame_bytes=frame,
            max_concurrent_streams=limits.max_concurrent_streams,
            heartbeat_interval_ms=max(1, round(limits.heartbeat_interval_s * 1000)),
        )


RELAY = web.AppKey("relay", Relay)


def create_relay_app(config: RelayConfig) -> web.Application:
    relay = Relay(config, VenueTokens(config.relay.venues_file))
    app = web.Application(middlewares=[error_middleware, relay.metrics.middleware()])
    app[RELAY] = relay
    app[METRICS_PUBLIC] = config.relay.metrics_public
    if config.nats is not None:
        relay.cluster = Cluster(config.nats, relay.registry, config.limits)
        app.cleanup_ctx.append(_cluster_context)
    app.router.add_route("*", "/v/{venue}/{path:.*}", _forward)
    app.router.add_get("/tunnel", _tunnel)
    app.router.add_get("/venues/{venue}/health", _venue_health)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", relay.metrics.handle)
    app.on_shutdown.append(_close_tunnels_late)
    return app


async def _cluster_context(app: web.Application) -> AsyncIterator[None]:
    cluster = app[RELAY].cluster
    assert cluster is not None
    await cluster.connect()
    yield
    await cluster.close()


async def _forward(request: web.Request) -> web.StreamResponse:
    """Local tunnel first; without one, a relay that holds the venue, over NATS."""
    relay = request.app[RELAY]
    venue = request.match_info["venue"]
    relay.requests.check(venue)
    if relay.cluster is not None and relay.registry.get(venue) is None:
        routed = relay.metrics.routed
        try:
            response = await relay.cluster.forward(request)
        except ApiError as exc:
            routed.labels(f"{exc.status // 100}xx").inc()
            raise
        routed.labels(f"{response.status // 100}xx").inc()
        return response
    return await forward(request, relay.registry, relay.config.limits)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "venuesOnline": len(request.app[RELAY].registry.links())})


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


async def _venue_health(request: web.Request) -> web.Response:
    """A venue's tunnel and what its bridge last reported; for platforms and technicians."""
    relay = request.app[RELAY]
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(presented.encode(), relay.config.relay.operator_token.encode()):
        raise UnauthorizedError("unauthorized", "the operator token is missing or wrong")
    venue = request.match_info["venue"]
    if venue not in relay.tokens.names():
        raise NotFoundError("unknown_venue", f"no venue {venue!r} is registered")
    link = relay.registry.get(venue)
    body: dict[str, object] = {"venue": venue, "online": link is not None}
    if link is not None:
        health = link.health
        body.update(
            sessionEpoch=link.epoch,
            bridgeVersion=link.bridge_version,
            connectedAt=_iso(link.connected_at),
            lastHeartbeat=_iso(link.last_heartbeat),
            posOnline=health.pos_online if health else None,
            queueDepth=health.queue_depth if health else None,
            oldestQueuedAgeMs=health.oldest_queued_age_ms if health else None,
            clockSkewMs=(
                health.clock_ms - round(link.health_at * 1000)
                if health and link.health_at
                else None
            ),
            healthReportedAt=_iso(link.health_at),
        )
    return web.json_response(body)


async def _tunnel(request: web.Request) -> web.WebSocketResponse:
    relay = request.app[RELAY]
    limits = relay.config.limits
    ws = web.WebSocketResponse(
        max_msg_size=limits.max_message_bytes + _MESSAGE_SLACK_BYTES,
        timeout=CLOSE_TIMEOUT_S,
        compress=False,
    )
    try:
        await ws.prepare(request)
    except ConnectionError:  # the bridge went away mid-upgrade
        return ws
    conn = TunnelConnection(
        ws, TunnelProtocol(Side.RELAY), max_message_bytes=limits.max_message_bytes
    )
    conn.start()
    relay.connections.add(conn)
    link: VenueLink | None = None
    try:
        hello = await _handshake(conn, limits.handshake_timeout_s)
        if hello is None:
            return ws
        source = request.remote or "unknown"
        if relay.hellos.blocked(source):
            await conn.close(CloseCode.RATE_LIMITED, "too many refused HELLOs; back off", 1008)
            return ws
        if not relay.tokens.check(hello.venue_id, hello.token):
            relay.hellos.failed(source)
            logger.warning("tunnel refused: bad token for venue %r from %s", hello.venue_id, source)
            await conn.close(CloseCode.UNAUTHORIZED, "venue or token not accepted", 1008)
            return ws
        if not relay.registry.admits(hello.venue_id, hello.session_epoch):
            logger.warning(
                "tunnel refused: venue %r epoch %d is not newer than the live one",
                hello.venue_id,
                hello.session_epoch,
            )
            await conn.close(CloseCode.SUPERSEDED, "a newer session holds this venue", 1008)
            return ws
        link = VenueLink(
            hello.venue_id,
            hello.session_epoch,
            conn,
            Slots(limits.max_concurrent_streams),
            hello.bridge_version,
        )
        conn.on_health = link.record_health
        conn.protocol.accept(relay.wire_limits())
        conn.kick()
        old = relay.registry.register(link)
        if old is not None:
            logger.info("venue %r: epoch %d supersedes %d", link.venue, link.epoch, old.epoch)
            relay.close_in_background(old.conn, CloseCode.SUPERSEDED, "a newer session took over")
        logger.info("venue %r connected (epoch %d)", link.venue, link.epoch)
        if relay.cluster is not None:
            await relay.cluster.hold(link.venue)
        await conn.run()
        logger.info("venue %r disconnected", link.venue)
        return ws
    finally:
        if link is not None:
            relay.registry.unregister(link)
        relay.connections.discard(conn)
        await conn.close(CloseCode.GOING_AWAY)
        if link is not None and relay.cluster is not None:
            await relay.cluster.release(link.venue)


async def _handshake(conn: TunnelConnection, timeout_s: float) -> Hello | None:
    """The HELLO, or ``None`` after refusing (protocol error, silence, a closed socket)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in await conn.receive_events():
                    if isinstance(event, Hello):
                        return event
    except TimeoutError:
        await conn.close(CloseCode.TIMEOUT, "no HELLO in time", 1008)
    except TunnelProtocolError as exc:
        logger.warning("tunnel handshake failed: %s", exc)
        await conn.close(exc.close_code, str(exc), 1002)
    except TunnelGoneError:
        pass
    return None


async def close_tunnels(app: web.Application, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Shutdown, step one: every tunnel gets CLOSE(GOING_AWAY) and websocket 1001, so its
    bridge reconnects (to this relay once it is back, or another).

    Call it before ``runner.cleanup()``: from aiohttp's ``pre_shutdown`` on, the server reads
    nothing more from its connections, so the bridges' answering CLOSE could not arrive.
    """
    relay = app[RELAY]
    conns = list(relay.connections)
    await asyncio.gather(
        *(c.close(CloseCode.GOING_AWAY, "relay shutting down", 1001, timeout_s) for c in conns),
        return_exceptions=True,
    )


async def _close_tunnels_late(app: web.Application) -> None:
    # ``on_shutdown`` runs after pre_shutdown: the answer cannot be read, so do not wait for it.
    await close_tunnels(app, timeout_s=0)
