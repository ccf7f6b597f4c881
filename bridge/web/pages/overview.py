"""What the overview page shows, gathered apart from its handler: each POS online or not,
the outbox, payments needing attention, and each configured location with its POS tables.

Built on :func:`bridge.web.status.status_view`, the same status ``GET /api/status``
answers, plus each location's tables asked of its driver (``list_tables``). A POS that is
offline, slow or refusing shows as such on its locations; the page never fails for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bridge.platforms.loke.backend import location_ref
from bridge.runtime import Runtime
from bridge.web.status import status_view
from bridge.web.views import StatusView
from common.errors import ApiError


@dataclass(frozen=True, slots=True)
class LocationTables:
    """A configured location and what its POS said of its tables."""

    location_id: str
    name: str
    driver: str
    pos_location: str
    #: ``None``: the POS did not answer (see ``problem``).
    tables: tuple[int, ...] | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Overview:
    status: StatusView
    locations: tuple[LocationTables, ...]


async def _tables(runtime: Runtime, location_id: str) -> LocationTables:
    location = runtime.config.locations[location_id]
    base = (location.loke_location_id, location.name, location.driver, location.pos_location)
    try:
        tables = await runtime.operations.list_tables(location_ref(location))
    except ApiError as exc:  # pos_offline (unreachable, timed out, failing)
        return LocationTables(*base, tables=None, problem=f"offline: {exc.message}")
    return LocationTables(*base, tables=tuple(sorted(t.number for t in tables)))


async def overview(runtime: Runtime) -> Overview:
    """The overview now; the locations' tables are asked of their POSes at once."""
    status = await status_view(runtime)
    found = await asyncio.gather(*(_tables(runtime, key) for key in runtime.config.locations))
    return Overview(status=status, locations=tuple(found))
