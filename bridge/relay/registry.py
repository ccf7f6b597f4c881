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
import time
from dataclasses import dataclass, field

from bridge.tunnel.messages import Health
from bridge.tunnel_io import TunnelConnection


@dataclass(eq=False)
class VenueLink:
    """One venue's registered tunnel and what its HEALTH frames last said."""

    venue: str
    epoch: int
    conn: TunnelConnection
    slots: asyncio.Semaphore
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
