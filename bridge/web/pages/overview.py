"""What the overview page shows, gathered apart from its handler: each POS online or not,
the outbox, payments needing attention, and each configured location with its POS tables.

Built on :func:`bridge.web.status.status_view`, the same status ``GET /api/status``
answers, plus each location's tables asked of its driver (``list_tables``). A POS that is
offline, slow or refusing shows as such on its locations; the page never fails for it. The
locations come as :class:`~bridge.services.locations.LocationRef` from the composition root
(``setup_pages``): the web layer names no platform (``tests/core/test_layers.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.runtime import Runtime
from bridge.services.locations import LocationRef
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


#: The locations to show, as the services name them (the composition root says which).
LocationRefs = Callable[[], Iterable[LocationRef]]


async def _tables(runtime: Runtime, ref: LocationRef, name: str) -> LocationTables:
    base = (ref.location_id, name, ref.driver, ref.pos_location)
    try:
        tables = await runtime.operations.list_tables(ref)
    except ApiError as exc:  # pos_offline (unreachable, timed out, failing)
        return LocationTables(*base, tables=None, problem=f"offline: {exc.message}")
    return LocationTables(*base, tables=tuple(sorted(t.number for t in tables)))


async def overview(runtime: Runtime, locations: Iterable[LocationRef]) -> Overview:
    """The overview now; the locations' tables are asked of their POSes at once."""
    status = await status_view(runtime)
    names = {view.loke_location_id: view.name for view in status.locations}
    found = await asyncio.gather(
        *(_tables(runtime, ref, names.get(ref.location_id, ref.location_id)) for ref in locations)
    )
    return Overview(status=status, locations=tuple(found))
