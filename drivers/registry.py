"""Finding drivers: the entry-point group ``pos_bridge.drivers``.

A driver registers under its URL scheme, so a vendor ships a driver as its own package::

    [project.entry-points."pos_bridge.drivers"]
    acme = "acme_pos.driver:AcmeDriver"

Drivers are imported only when a config names them, and a driver that fails to import is
reported (:class:`DriverLoadError`), not fatal to the others: the bridge puts an
:class:`~drivers.unloaded.UnloadedDriver` in its place.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from drivers.base import DriverFactory
from drivers.errors import DriverConfigError

ENTRY_POINT_GROUP = "pos_bridge.drivers"

logger = logging.getLogger(__name__)


class DriverLoadError(DriverConfigError):
    """The driver's package is installed but fails to import (a broken plugin)."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__("url", f"driver {name!r} failed to load: {cause!r}")
        self.name = name


def available_drivers() -> dict[str, str]:
    """Registered driver names and the objects they point at, without importing them."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_driver(name: str) -> DriverFactory:
    """Import the driver registered as ``name``.

    Raises:
        DriverConfigError: nothing is registered under ``name``.
        DriverLoadError: it is registered but failed to import (logged with its traceback).
    """
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available_drivers())) or "none"
        raise DriverConfigError("url", f"unknown scheme {name!r} (installed drivers: {known})")
    try:
        factory: DriverFactory = matches[0].load()
    except Exception as exc:  # a broken plugin must not take the bridge down
        logger.exception("driver %s failed to load", name)
        raise DriverLoadError(name, exc) from exc
    return factory


def check_drivers() -> dict[str, str | None]:
    """Every registered driver, imported: ``None`` if it loads, else why not."""
    problems: dict[str, str | None] = {}
    for name in sorted(available_drivers()):
        try:
            load_driver(name)
        except DriverConfigError as exc:
            problems[name] = exc.message
        else:
            problems[name] = None
    return problems
