"""Finding drivers: the entry-point group ``pos_bridge.drivers``.

A driver registers under its URL scheme, so a vendor ships a driver as its own package::

    [project.entry-points."pos_bridge.drivers"]
    acme = "acme_pos.driver:AcmeDriver"

Drivers are imported only when a config names them, and a driver that fails to import is
reported, not fatal to the others.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from drivers.base import DriverFactory
from drivers.errors import DriverConfigError

ENTRY_POINT_GROUP = "pos_bridge.drivers"

logger = logging.getLogger(__name__)


def available_drivers() -> dict[str, str]:
    """Registered driver names and the objects they point at, without importing them."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_driver(name: str) -> DriverFactory:
    """Import the driver registered as ``name``.

    Raises:
        DriverConfigError: nothing is registered under ``name``, or it failed to import.
    """
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available_drivers())) or "none"
        raise DriverConfigError("url", f"unknown scheme {name!r} (installed drivers: {known})")
    try:
        factory: DriverFactory = matches[0].load()
    except Exception as exc:  # a broken plugin must not take the bridge down
        logger.exception("driver %s failed to load", name)
        raise DriverConfigError("url", f"driver {name!r} failed to load: {exc}") from exc
    return factory
