"""LOKE as the technician's status sees it: the locations served and each organisation's
connection (``bridge/services/platform_status.py``)."""

from __future__ import annotations

from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.locations import LokeLocations
from bridge.services.platform_status import PlatformConnection, ServedLocation
from bridge.store.oauth_tokens import OAuthTokens


class LokeStatus:
    def __init__(self, locations: LokeLocations, tokens: OAuthTokens | None) -> None:
        self._locations = locations
        self._tokens = tokens  # None: no [loke], nothing to connect

    def served_locations(self) -> list[ServedLocation]:
        return self._locations.served_locations()

    async def connections(self) -> list[PlatformConnection]:
        if self._tokens is None:
            return []
        return [
            PlatformConnection(PLATFORM, row.account, row.state, row.reason or None)
            for row in await self._tokens.all(PLATFORM)
        ]
