"""The bridge's tunnel client: one outbound websocket to each configured relay, kept up.

- **Dial out** to ``tunnel.url`` (``wss://``; plain ``ws://`` only to loopback, checked in
  ``bridge/config.py``), honouring ``HTTPS_PROXY`` (aiohttp's ``trust_env``).
- **HELLO** with the venue, its token and a **session epoch** taken from a counter file in
  the bridge's data folder, incremented and fsynced before every connection. Every
  connection, across restarts too, thus carries a higher epoch than any before it, without
  trusting the venue box's clock: the relay lets it replace a stale registration at once.
- **Liveness**: the shared shell (``tunnel/asyncio/``) PINGs every
  ``heartbeat_interval_ms`` of the relay's WELCOME and closes when a PONG misses the next
  beat, so a half-open relay is noticed within two intervals.
- **Reconnect** after any failure with full-jitter capped exponential backoff
  (``bridge/core/backoff.py``), reset once a connection has stayed up ``stable_after_s``.
- **HEALTH** every ``health_interval_s``: POS online, queue depth, oldest queued age, clock.
- **Two relays at once** (``tunnel.urls``): one tunnel to each, each with its own reconnect
  schedule, so losing one relay leaves the other serving with no reconnect gap. Epochs come
  from the one counter: each relay sees only its own connections (registries are per relay),
  so the two tunnels never supersede each other, and no epoch is ever used twice.
- Each forwarded request goes to the bridge's own HTTP listener on 127.0.0.1 over a pooled
  keep-alive client (``forward.py``), which is why the client dials only once
  :meth:`UplinkClient.serving` has told it where that listener is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bridge import __version__
from bridge.config import TunnelConfig
from bridge.core.backoff import full_jitter_delay
from bridge.runtime import RUNTIME
from bridge.uplink.forward import LocalOrigin, forward, local_session
from tunnel.asyncio import (
    CLOSE_TIMEOUT_S,
    StreamCancelledError,
    TunnelConnection,
    TunnelGoneError,
    TunnelStream,
)
from tunnel.errors import CloseCode, TunnelProtocolError
from tunnel.messages import Close, RequestHead, Welcome
from tunnel.protocol import Side, TunnelProtocol

logger = logging.getLogger(__name__)

#: Largest websocket message accepted from the relay (its coalescing size is at most 64 MiB).
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024 + 64 * 1024


@dataclass(frozen=True, slots=True)
class HealthReport:
    pos_online: bool
    queue_depth: int
    oldest_queued_age_ms: int


HealthSource = Callable[[], Awaitable[HealthReport]]


class TunnelRefusedError(ConnectionError):
    """The relay answered HELLO with a CLOSE (``UNAUTHORIZED``, ``SUPERSEDED``, …)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        try:
            name = CloseCode(self.code).name
        except ValueError:
            name = str(self.code)
        return f"relay refused the tunnel: {name} {self.reason}".rstrip()


def next_epoch(path: Path, now_ms: int | None = None) -> int:
    """Increment and durably store the session epoch counter; return the new value.

    A counter file that exists but cannot be read (a damaged disk, a hand edit) restarts the
    count at the wall clock in milliseconds, which is above any count reached by counting.
    """
    try:
        current = int(path.read_text().strip() or 0)
    except FileNotFoundError:
        current = 0
    except (OSError, ValueError):
        current = now_ms if now_ms is not None else int(time.time() * 1000)
    epoch = current + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(f"{epoch}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return epoch


#: What the retry loop treats as "reconnect later" (anything else is a bug, logged with a trace).
RETRYABLE = (
    aiohttp.ClientError,
    OSError,
    TimeoutError,
    TunnelGoneError,
    TunnelProtocolError,
    TunnelRefusedError,
)


class UplinkClient:
    """Keeps one tunnel to each relay up; forwards their requests to :attr:`origin`."""

    def __init__(
        self, config: TunnelConfig, *, epoch_file: Path, health: HealthSource | None = None
    ) -> None:
        self.config = config
        #: ``tunnel.ca_file`` trusted for wss://, or the system's CAs (``True``).
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else True
        )
        self.epoch_file = epoch_file
        self.health = health
        self.origin: LocalOrigin | None = None
        self._local_http: aiohttp.ClientSession | None = None
        self.connection: TunnelConnection | None = None
        self.connects = 0  # successful handshakes, for tests and status
        self.epoch = 0
        self._local_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_stream: dict[tuple[TunnelConnection, int], asyncio.Task[None]] = {}
        #: The live tunnel to each relay URL (``connection`` is the latest one made).
        self.connections: dict[str, TunnelConnection] = {}
        self._epoch_lock = asyncio.Lock()
        self._stopping = False

    @property
    def connected(self) -> bool:
        return any(conn.alive for conn in self.connections.values())

    def serving(self, origin: LocalOrigin) -> None:
        """The bridge's listener is up at ``origin``: the client may now dial the relays."""
        self.origin = origin
        self._local_ready.set()

    async def stop(self) -> None:
        """Say goodbye (``CLOSE(GOING_AWAY)``, websocket 1001) so the relay marks the venue
        offline at once instead of after a missed heartbeat; then cancel :meth:`run`."""
        self._stopping = True
        await asyncio.gather(
            *(
                conn.close(CloseCode.GOING_AWAY, "bridge stopping", 1001)
                for conn in list(self.connections.values())
            ),
            return_exceptions=True,
        )

    async def run(self) -> None:
        """Keep one tunnel to each configured relay (``tunnel.urls``); until cancelled."""
        await self._local_ready.wait()
        async with (
            aiohttp.ClientSession(trust_env=True) as relay_http,
            local_session() as self._local_http,
        ):
            await asyncio.gather(
                *(self._keep_up(url, relay_http) for url in self.config.relay_urls)
            )

    async def _keep_up(self, url: str, relay_http: aiohttp.ClientSession) -> None:
        """Connect to ``url``, serve, reconnect with backoff; each relay on its own schedule."""
        attempt = 0
        failing = False
        while True:
            opened_at: list[float] = []
            try:
                await self._connect_once(url, relay_http, opened_at)
                error: BaseException | None = None
            except RETRYABLE as exc:
                error = exc
            except Exception as exc:  # a bug: keep the tunnel alive anyway
                logger.exception("tunnel client failed")
                error = exc
            if self._stopping:
                return
            if opened_at and time.monotonic() - opened_at[0] >= self.config.stable_after_s:
                attempt = 0
            attempt += 1
            delay = full_jitter_delay(
                attempt,
                self.config.reconnect_initial_s,
                self.config.reconnect_max_s,
                random.random(),
            )
            if isinstance(error, TunnelRefusedError) and error.code in (
                CloseCode.UNAUTHORIZED,
                CloseCode.RATE_LIMITED,
            ):
                delay = self.config.reconnect_max_s  # a person must fix the token
            if not failing or opened_at:
                logger.warning("tunnel to %s down (%s); reconnecting in %.2f s", url, error, delay)
            failing = not opened_at
            await asyncio.sleep(delay)

    async def _connect_once(
        self,
        url: str,
        relay_http: aiohttp.ClientSession,
        opened_at: list[float],
    ) -> None:
        config = self.config
        async with asyncio.timeout(config.connect_timeout_s):
            ws = await relay_http.ws_connect(
                url,
                ssl=self._ssl,
                autoping=True,
                compress=0,
                max_msg_size=MAX_RECEIVE_MESSAGE_BYTES,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            )
        conn = TunnelConnection(
            ws,
            TunnelProtocol(Side.CLIENT),
            on_request=lambda head, stream: self._on_request(conn, head, stream),
            on_cancel=lambda stream_id: self._on_cancel(conn, stream_id),
        )
        conn.start()
        health_task: asyncio.Task[None] | None = None
        try:
            async with self._epoch_lock:  # one counter for all relays: never a repeat
                epoch = self.epoch = await asyncio.to_thread(next_epoch, self.epoch_file)
            conn.protocol.send_hello(
                venue_id=config.venue,
                token=config.token,
                session_epoch=epoch,
                bridge_version=__version__,
            )
            conn.kick()
            async with asyncio.timeout(config.connect_timeout_s):
                await self._await_welcome(conn)
            self.connection = self.connections[url] = conn
            self.connects += 1
            opened_at.append(time.monotonic())
            logger.info("tunnel up to %s as %r (epoch %d)", url, config.venue, epoch)
            health_task = asyncio.create_task(self._report_health(conn), name="tunnel-health")
            await conn.run()
            close = conn.protocol.close_received
            raise TunnelGoneError(
                f"closed by the relay: {close.code} {close.reason}" if close else "connection lost"
            )
        finally:
            if health_task is not None:
                health_task.cancel()
            for (owner, _), task in list(self._by_stream.items()):
                if owner is conn:
                    task.cancel()
            if self.connections.get(url) is conn:
                del self.connections[url]
            await conn.close(CloseCode.GOING_AWAY, "bridge stopping", 1001)

    async def _await_welcome(self, conn: TunnelConnection) -> None:
        while True:
            for event in await conn.receive_events():
                if isinstance(event, Close):
                    raise TunnelRefusedError(event.code, event.reason)
                if not isinstance(event, Welcome):
                    conn.dispatch(event)
            if conn.protocol.limits is not None:
                return

    def _on_request(self, conn: TunnelConnection, head: RequestHead, stream: TunnelStream) -> None:
        assert self.origin is not None and self._local_http is not None
        task = asyncio.create_task(forward(self.origin, self._local_http, conn, head, stream))
        self._tasks.add(task)
        key = (conn, head.stream_id)  # stream ids repeat across relays' connections
        self._by_stream[key] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._by_stream.get(key) is t:
                del self._by_stream[key]
            if not t.cancelled():
                exc = t.exception()  # streams cancelled by the relay end here; nothing to report
                if exc is not None and not isinstance(exc, StreamCancelledError | TunnelGoneError):
                    logger.error("tunnel request failed", exc_info=exc)

        task.add_done_callback(done)

    def _on_cancel(self, conn: TunnelConnection, stream_id: int) -> None:
        task = self._by_stream.get((conn, stream_id))
        if task is not None:
            task.cancel()  # the relay gave up (deadline, client gone): stop the local call

    async def _report_health(self, conn: TunnelConnection) -> None:
        while conn.alive:
            if self.health is not None:
                try:
                    report = await self.health()
                    conn.protocol.send_health(
                        pos_online=report.pos_online,
                        queue_depth=report.queue_depth,
                        oldest_queued_age_ms=report.oldest_queued_age_ms,
                        clock_ms=round(time.time() * 1000),
                    )
                    conn.kick()
                except Exception:
                    if not conn.alive:
                        return
                    logger.exception("could not build a HEALTH report")
            await asyncio.sleep(self.config.health_interval_s)


def runtime_health(app: web.Application) -> HealthSource:
    """HEALTH from the bridge's own state: POS health and the payment queue (read when
    reported: ``app[RUNTIME]`` exists once the services have started)."""

    async def report() -> HealthReport:
        runtime = app[RUNTIME]
        queue = await runtime.store.queue_status()
        oldest = queue.oldest_queued_at
        age_ms = round((runtime.clock() - oldest).total_seconds() * 1000) if oldest else 0
        online = all(state.online for state in runtime.health.states.values())
        return HealthReport(online, queue.depth, max(age_ms, 0))

    return report


UPLINK = web.AppKey("uplink", UplinkClient)


def make_uplink(app: web.Application, config: TunnelConfig, data_dir: Path) -> None:
    """Wire the tunnel client into the bridge app (``bridge/app.py``): built now, started by a
    cleanup context after the services, dialling once ``serving`` is called."""
    app[UPLINK] = UplinkClient(
        config, epoch_file=data_dir / "tunnel-epoch", health=runtime_health(app)
    )
    app.cleanup_ctx.append(_uplink_context)


async def _uplink_context(app: web.Application) -> AsyncIterator[None]:
    uplink = app[UPLINK]
    task = asyncio.create_task(uplink.run(), name="tunnel-client")
    yield
    await uplink.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
