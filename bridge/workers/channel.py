"""What both ends of an owner↔worker channel share: the transport, the frame reader, and
writes gathered per event-loop turn.

Why gather writes: answers complete in bursts (a group commit wakes every payment of its
batch in one turn, 20–100 of them under load), and so do a worker's calls; one ``write`` of
the joined frames per turn is one system call instead of one per frame.
"""

from __future__ import annotations

import asyncio
from typing import cast

from bridge.workers.frames import FrameReader


class FramedChannel(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._outgoing.clear()

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, frame: bytes) -> None:
        """Queue ``frame``; the turn's frames leave together once the loop gets to it."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(frame)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
