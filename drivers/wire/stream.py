"""A codec on a byte stream (serial port or TCP socket): the I/O shell of the stream drivers.

:class:`StreamExchange` owns one :class:`ByteLink` and one codec. It connects lazily, writes
what the codec wants sent, feeds it what arrives, runs its retransmit timers, and matches
replies to waiting callers by request id, so requests may be pipelined when the codec allows.

Failure rules, each chosen so that a payment is never applied twice:

- connecting fails → :class:`PosOfflineError` (nothing was sent); further calls fail the same
  way at once, without connecting, until a capped, jittered backoff has passed (0.1 s
  doubling to 2 s; reset by a connect that works), so callers queued behind one unreachable
  POS do not each wait out a connect timeout, and a dead POS is not hammered;
- the stream breaks, or a reply does not come within the timeout, while a request is in
  flight → :class:`PosTimeoutError` for it (it may have landed; the outbox reconciles with
  ``find_payment``), and the stream is dropped, so the next call starts on a fresh one:
  a half-open TCP socket or a rebooted POS then costs one timeout, not one per request;
- the codec gives up (no ACK after its retransmits) → :class:`PosTimeoutError`, or
  :class:`PosOfflineError` when the codec knows the POS never took it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from typing import Protocol

from bridge.core.backoff import retry_delay
from drivers.errors import PosOfflineError, PosTimeoutError, PosUnavailableError
from drivers.wire.codec import ClientCodec
from drivers.wire.messages import MAX_ID, Reply, Request, Undelivered

logger = logging.getLogger(__name__)

RECONNECT_INITIAL_S = 0.1  # first wait after a failed connect
RECONNECT_MAX_S = 2.0  # cap: a POS that comes back is reached within this


class ByteLink(Protocol):
    """Moves bytes, nothing else. ``connect`` and ``read`` raise ``OSError`` on failure."""

    describe: str

    async def connect(self) -> None: ...

    async def read(self) -> bytes:
        """Some bytes, or ``b""`` when the stream has ended."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class StreamExchange:
    """Requests over one codec and one link; see the module docstring."""

    def __init__(self, link: ByteLink, codec: ClientCodec) -> None:
        self._link = link
        self._codec = codec
        # Ids start at random: a serial line outlives the bridge process, and a POS may still
        # be sending replies to the requests of a bridge that was killed. Counting from 1 again
        # would hand those to the new process's requests with the same ids.
        self._ids = itertools.count(secrets.randbelow(MAX_ID) + 1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake_timer = asyncio.Event()
        self._generation = 0  # one per connection: a late failure never drops a newer one
        self._failed_connects = 0
        self._retry_at = 0.0
        self._last_connect_error = ""
        self.describe = link.describe

    @property
    def connected(self) -> bool:
        return self._connected

    async def open(self) -> None:
        """Try to connect once; a POS that is down now is not an error yet."""
        try:
            await self._ensure_connected()
        except PosOfflineError as exc:
            logger.warning("%s: not reachable yet (%s); will retry on the next call", self, exc)

    async def close(self) -> None:
        await self._drop(PosOfflineError("driver closed"))

    async def call(self, op: str, args: dict[str, object], timeout: float) -> Reply:
        """Send one request and wait for its reply (see the failure rules above)."""
        await self._ensure_connected()
        generation = self._generation
        request = Request(self._next_id(), op, args)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            self._codec.send_request(request, time.monotonic())
            await self._flush()
            self._wake_timer.set()
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except PosUnavailableError:
            raise  # the stream was already dropped for this (PosTimeoutError is a TimeoutError)
        except TimeoutError:
            error = PosTimeoutError(f"{self}: no reply to {op} within {timeout:g} s")
            await self._drop(error, generation)
            raise error from None
        except OSError as exc:
            await self._drop(PosTimeoutError(f"{self}: write failed: {exc}"), generation)
            raise PosTimeoutError(f"{self}: write failed during {op}: {exc}") from exc
        finally:
            self._pending.pop(request.id, None)

    def __str__(self) -> str:
        return self.describe

    # -- internals ---------------------------------------------------------------------------

    def _next_id(self) -> int:
        request_id = next(self._ids)
        if request_id > MAX_ID:
            self._ids = itertools.count(2)
            request_id = 1
        return request_id

    async def _ensure_connected(self) -> None:
        if self._connected:
            return
        async with self._connect_lock:
            if self._connected:
                return
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise PosOfflineError(
                    f"{self}: cannot connect ({self._last_connect_error}); next try in {wait:.2f} s"
                )
            try:
                await self._link.connect()
            except OSError as exc:
                self._failed_connects += 1
                self._last_connect_error = str(exc) or type(exc).__name__
                delay = retry_delay(
                    self._failed_connects, RECONNECT_INITIAL_S, RECONNECT_MAX_S, random.random()
                )
                self._retry_at = time.monotonic() + delay
                raise PosOfflineError(f"{self}: cannot connect: {exc}") from exc
            self._failed_connects, self._retry_at = 0, 0.0
            self._codec.connection_made(time.monotonic())
            self._connected = True
            self._generation += 1
            generation = self._generation
            self._reader = asyncio.create_task(self._read_loop(generation), name=f"{self} reader")
            self._timer = asyncio.create_task(self._timer_loop(generation), name=f"{self} timers")

    async def _flush(self) -> None:
        async with self._write_lock:
            data = self._codec.data_to_send()
            if data:
                await self._link.write(data)

    async def _read_loop(self, generation: int) -> None:
        try:
            while True:
                data = await self._link.read()
                if not data:
                    raise ConnectionResetError("the POS closed the connection")
                self._codec.receive_data(data, time.monotonic())
                self._deliver()
                await self._flush()  # ACKs, and frames waiting for a window
                self._wake_timer.set()
        except asyncio.CancelledError:
            raise
        except (OSError, PosUnavailableError) as exc:
            logger.warning("%s: stream lost: %s", self, exc)
            await self._drop(PosTimeoutError(f"{self}: stream lost: {exc}"), generation)

    async def _timer_loop(self, generation: int) -> None:
        try:
            while True:
                deadline = self._codec.next_deadline()
                self._wake_timer.clear()
                if deadline is None:
                    await self._wake_timer.wait()
                    continue
                delay = deadline - time.monotonic()
                if delay > 0:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
                    # lands as the event is set, and this task would then never end.
                    try:
                        async with asyncio.timeout(delay):
                            await self._wake_timer.wait()
                        continue
                    except TimeoutError:
                        pass
                self._codec.handle_timeouts(time.monotonic())
                self._deliver()
                await self._flush()
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            await self._drop(PosTimeoutError(f"{self}: write failed: {exc}"), generation)

    def _deliver(self) -> None:
        for event in self._codec.events_received():
            future = self._pending.get(event.id)
            if future is None or future.done():
                logger.debug("%s: late or unknown reply %d dropped", self, event.id)
                continue
            if isinstance(event, Undelivered):
                error: PosUnavailableError = (
                    PosTimeoutError(f"{self}: {event.reason}")
                    if event.maybe_received
                    else PosOfflineError(f"{self}: {event.reason}")
                )
                future.set_exception(error)
            else:
                future.set_result(event)

    async def _drop(self, error: PosUnavailableError, generation: int | None = None) -> None:
        """Close the stream and fail every request still waiting on it.

        ``generation`` is the connection the failure was seen on; if the exchange has
        reconnected since, the failure is old news and the new connection is kept.
        """
        if generation is not None and generation != self._generation:
            return
        self._connected = False
        current = asyncio.current_task()
        for task in (self._reader, self._timer):
            if task is not None and task is not current:
                task.cancel()
        self._reader = self._timer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a caller may have stopped waiting already
        try:
            await self._link.close()
        except OSError as exc:
            logger.debug("%s: close failed: %s", self, exc)
