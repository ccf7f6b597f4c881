"""One HTTP exchange on a tunnel, as the application sees it, and how such an exchange fails."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from tunnel.errors import TunnelError
from tunnel.messages import ResponseHead


class StreamOwner(Protocol):
    """What a stream needs of the connection it belongs to (``TunnelConnection``): to hand
    back the flow-control credit of the body bytes the application has read."""

    def consumed(self, stream_id: int, size: int) -> None: ...


class TunnelGoneError(ConnectionError):
    """The tunnel connection ended (CLOSE, websocket closed or heartbeat missed)."""


class StreamCancelledError(TunnelError):
    """The peer cancelled the stream; ``code`` is its :class:`CancelCode`."""

    def __init__(self, stream_id: int, code: int) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.code = code

    def __str__(self) -> str:
        return f"stream {self.stream_id} cancelled by the peer (code {self.code})"


class TunnelStream:
    """One HTTP exchange on a tunnel: the peer's head and body, as they arrive."""

    def __init__(self, owner: StreamOwner, stream_id: int) -> None:
        self._owner = owner
        self.id = stream_id
        self.head: asyncio.Future[ResponseHead] = asyncio.get_running_loop().create_future()
        self._chunks: deque[bytes] = deque()
        #: What :meth:`read` waits on, made only when it must wait: most streams never do
        #: (a bodiless request's END_OF_BODY comes with its head), and an ``asyncio.Event``
        #: per stream cost its construction and a ``set`` per piece even then.
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: BaseException | None = None

    async def read(self) -> bytes:
        """The next piece of the peer's body, ``b""`` once it has ended; its flow-control
        credit goes back to the peer now.

        Raises:
            StreamCancelledError: the peer cancelled the stream.
            TunnelGoneError: the connection ended first.
        """
        while (data := self.read_nowait()) is None:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return data

    def read_nowait(self) -> bytes | None:
        """As :meth:`read`, but ``None`` instead of waiting: the common small answer (head,
        body and END_OF_BODY in one message) is then read with no timer and no task."""
        if self._chunks:
            data = self._chunks.popleft()
            self._owner.consumed(self.id, len(data))
            return data
        if self._ended:  # complete: a CANCEL after END_OF_BODY takes nothing from it
            return b""
        if self._error is not None:
            raise self._error
        return None

    @property
    def bodiless(self) -> bool:
        """The peer's END_OF_BODY came with no body bytes (and nothing failed the stream)."""
        return self._ended and not self._chunks and self._error is None

    # -- what the connection calls ----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: no "never retrieved" warning if unused
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
