"""What each platform tells the technician about itself, in no platform's terms.

Why: ``/api/status``, ``pos-bridge status`` and the pages show every platform's served
locations and whether its connection needs the technician (LOKE's ``reauthorise``), but sit
below the platforms and may not import them. Each platform hands the composition root an
object with these two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

#: ``ok``: tokens usable; ``reauthorise``: the platform refused them, connect again;
#: ``none``: never connected.
ConnectionState = Literal["ok", "reauthorise", "none"]


@dataclass(frozen=True, slots=True)
class ServedLocation:
    platform: str
    location_id: str
    name: str
    driver: str
    pos_location: str
    #: ``file``: from the config file; ``linked``: on the technician's page.
    source: Literal["file", "linked"]


@dataclass(frozen=True, slots=True)
class PlatformConnection:
    """One account at a platform (LOKE: an organisation) and its tokens' state."""

    platform: str
    account: str
    state: ConnectionState
    reason: str | None = None


class PlatformStatus(Protocol):
    def served_locations(self) -> list[ServedLocation]: ...

    async def connections(self) -> list[PlatformConnection]: ...
