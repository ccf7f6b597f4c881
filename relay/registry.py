"""Which tunnel serves each venue now, decided by session epochs.

A bridge's HELLO carries a ``session_epoch`` that grows with every connection it makes. A
HELLO with a higher epoch than the venue's current registration replaces it at once (the old
tunnel gets ``CLOSE(SUPERSEDED)``): a bridge that reconnects after a network change is never
locked out by its own stale session. A HELLO with an equal or lower epoch, while the current
tunnel is alive, is refused with ``SUPERSEDED``: it is the stale one. A dead registration
(heartbeat missed, websocket gone) counts as absent, so any epoch is taken after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from tunnel.asyncio import TunnelConnection
from tunnel.messages import Health


class Slots:
    """A tunnel's stream slots (``max_concurrent_streams``): taken at once when one is free,
    else waited for in arrival order.

    Why not ``asyncio.Semaphore``: :meth:`try_take` takes a free slot without awaiting, and a
    waiter cancelled after being handed a slot passes it on (``tests/relay/test_slots.py``).
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody waits before us."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting for one in turn. Cancelled after being handed one, it gives
        the slot back."""
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot, but leaving: the next one gets it
            else:
                with contextlib.suppress(ValueError):  # give() may have dropped it already
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """A slot is free again: to the first live waiter, or back to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


@dataclass(eq=False)
class VenueLink:
    """One venue's registered tunnel and what its HEALTH frames last said."""

    venue: str
    epoch: int
    conn: TunnelConnection
    slots: Slots
    bridge_version: str = ""
    connected_at: float = field(default_factory=time.time)  # wall clock, for people
    health: Health | None = None
    health_at: float | None = None  # wall clock

    def record_health(self, health: Health) -> None:
        self.health = health
        self.health_at = time.time()

    @property
    def last_heartbeat(self) -> float:
        """Wall-clock time of the last message from the bridge (PONG, HEALTH, anything)."""
        return time.time() - (time.monotonic() - self.conn.last_seen)


class Registry:
    def __init__(self) -> None:
        self._links: dict[str, VenueLink] = {}

    def get(self, venue: str) -> VenueLink | None:
        """The venue's live tunnel, or ``None`` when it is offline."""
        link = self._links.get(venue)
        return link if link is not None and link.conn.alive else None

    def admits(self, venue: str, epoch: int) -> bool:
        current = self.get(venue)
        return current is None or epoch > current.epoch

    def register(self, link: VenueLink) -> VenueLink | None:
        """Make ``link`` the venue's tunnel; returns the live one it replaces, to be closed."""
        old = self.get(link.venue)
        self._links[link.venue] = link
        return old

    def unregister(self, link: VenueLink) -> None:
        if self._links.get(link.venue) is link:
            del self._links[link.venue]

    def links(self) -> list[VenueLink]:
        return list(self._links.values())
