"""Where a payment belongs, in no platform's terms.

Why: the services serve every platform (LOKE today, Dojo and LOKE's POS API later), so they
name a location by the platform and that platform's id for it, plus the POS behind it. Each
platform maps its own configuration to :class:`LocationRef` (``bridge/platforms/<name>/``);
nothing below the platforms reads a platform's config.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LocationRef:
    """A platform's location linked to a location of one POS driver."""

    platform: str
    #: The platform's id for the location (what its payments' ``location_id`` hold).
    location_id: str
    #: The name of the driver (``[drivers.<name>]``) whose POS holds the location's bills.
    driver: str
    #: The POS's own id for the location.
    pos_location: str

    @property
    def key(self) -> tuple[str, str]:
        """How payments find their location again: ``(platform, location_id)``."""
        return (self.platform, self.location_id)
