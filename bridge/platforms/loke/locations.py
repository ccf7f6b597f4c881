"""The LOKE locations this bridge serves: those in the config file and those linked on the
technician's page, changing while the bridge runs.

Why one registry: LOKE's routes check a caller against it, and the outbox finds a queued
payment's driver through :attr:`LokeLocations.refs`. That map only grows: a location
unlinked while it still has payments queued keeps its driver, so they still reach the POS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from bridge.config import AuthConfig, LocationConfig
from bridge.platforms.loke import PLATFORM
from bridge.services.locations import LocationRef
from bridge.services.platform_status import ServedLocation

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkedLocation:
    """A LOKE location served here, with how LOKE proves its calls to it."""

    location_id: str
    name: str
    driver: str
    pos_location: str
    auth: AuthConfig
    #: The LOKE organisation it was linked under; ``None``: configured in the file.
    organization_id: str | None = None

    @property
    def ref(self) -> LocationRef:
        return LocationRef(PLATFORM, self.location_id, self.driver, self.pos_location)

    @property
    def from_file(self) -> bool:
        return self.organization_id is None


def from_config(location: LocationConfig) -> LinkedLocation:
    return LinkedLocation(
        location.loke_location_id,
        location.name,
        location.driver,
        location.pos_location,
        location.auth,
    )


class LokeLocations:
    """The served locations by LOKE id; file entries cannot be replaced by links."""

    def __init__(self, configured: Mapping[str, LocationConfig]) -> None:
        self._served = {key: from_config(location) for key, location in configured.items()}
        #: Every location served since start, by ``(platform, location id)``, for the outbox.
        self.refs: dict[tuple[str, str], LocationRef] = {}
        for location in self._served.values():
            self.refs[location.ref.key] = location.ref

    def get(self, location_id: str) -> LinkedLocation | None:
        return self._served.get(location_id)

    def __iter__(self) -> Iterator[LinkedLocation]:
        return iter(list(self._served.values()))

    def serve(self, location: LinkedLocation) -> None:
        """Start (or keep) serving a linked location, replacing its earlier link."""
        current = self._served.get(location.location_id)
        if current is not None and current.from_file:
            raise ValueError(f"location {location.location_id!r} is configured in the file")
        self._served[location.location_id] = location
        self.refs[location.ref.key] = location.ref

    def served_locations(self) -> list[ServedLocation]:
        """For the technician's status (``bridge/services/platform_status.py``)."""
        return [
            ServedLocation(
                PLATFORM,
                loc.location_id,
                loc.name,
                loc.driver,
                loc.pos_location,
                "file" if loc.from_file else "linked",
            )
            for loc in self._served.values()
        ]

    def stop(self, location_id: str) -> None:
        """Stop serving a linked location (its payments still find their driver)."""
        current = self._served.get(location_id)
        if current is not None and not current.from_file:
            del self._served[location_id]
