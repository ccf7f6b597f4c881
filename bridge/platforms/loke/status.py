"""LOKE as the technician's status sees it: the locations served and each organisation's
connection (``bridge/services/platform_status.py``)."""

from __future__ import annotations

from bridge.platforms.loke.locations import LokeLocations
from bridge.services.platform_status import PlatformConnection, ServedLocation


class LokeStatus:
    def __init__(self, locations: LokeLocations) -> None:
        self._locations = locations

    def served_locations(self) -> list[ServedLocation]:
        return self._locations.served_locations()

    def connections(self) -> list[PlatformConnection]:
        return []
