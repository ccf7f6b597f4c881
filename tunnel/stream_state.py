"""One stream's record in a tunnel connection: its state and its windows. Pure.

Kept apart from ``streams.py``, whose :class:`~tunnel.streams.StreamTable` applies the
rules (docs/tunnel-protocol.md §5–§7) to these records: this module is only what a stream
holds and the one state it is in, derived from its flags.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class StreamState(Enum):
    OPEN = "open"
    HALF_CLOSED_LOCAL = "half_closed_local"  # our END_OF_BODY is written; theirs may follow
    HALF_CLOSED_REMOTE = "half_closed_remote"  # their END_OF_BODY arrived; we may still send
    CLOSED = "closed"  # both bodies ended
    CANCELLED = "cancelled"  # a CANCEL went one way; the other side's CANCEL is awaited


@dataclass(slots=True, eq=False)
class StreamRecord:
    send_window: int
    receive_window: int
    head_sent: bool  # relay: its REQUEST_HEAD; client: its RESPONSE_HEAD
    head_received: bool  # client: the REQUEST_HEAD; relay: the RESPONSE_HEAD
    local_ended: bool = False  # send_end() called; END_OF_BODY waits behind queued bytes
    end_written: bool = False
    remote_ended: bool = False
    cancelled: bool = False
    scheduled: bool = False  # in the table's ready queue
    queue: deque[memoryview] = field(default_factory=deque)
    queued: int = 0  # body bytes accepted, not yet framed
    unconsumed: int = 0  # body bytes delivered, not yet consumed
    credit: int = 0  # consumed bytes not yet returned in a WINDOW_UPDATE

    @property
    def state(self) -> StreamState:
        if self.cancelled:
            return StreamState.CANCELLED
        if self.end_written:
            return StreamState.CLOSED if self.remote_ended else StreamState.HALF_CLOSED_LOCAL
        return StreamState.HALF_CLOSED_REMOTE if self.remote_ended else StreamState.OPEN

    def take(self, n: int) -> bytes:
        """Remove the first ``n`` queued bytes; memoryviews keep this linear in ``n``."""
        parts: list[memoryview] = []
        self.queued -= n
        while n:
            head = self.queue[0]
            if len(head) <= n:
                parts.append(self.queue.popleft())
                n -= len(head)
            else:
                parts.append(head[:n])
                self.queue[0] = head[n:]
                n = 0
        return b"".join(parts)
