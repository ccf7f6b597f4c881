"""The bridge's status as the technician sees it: one function, for ``GET /api/status`` and
the overview page (``bridge/web/pages/overview.py``), so both say the same thing."""

from __future__ import annotations

import bridge
from bridge.contracts.times import rfc3339
from bridge.runtime import Runtime
from bridge.web.views import ConnectionView, LocationView, PosView, QueueView, StatusView


async def status_view(runtime: Runtime) -> StatusView:
    """Each POS, the outbox, every platform's served locations and connections, now."""
    now = runtime.clock()
    queue = await runtime.store.queue_status()
    oldest = queue.oldest_queued_at
    pos = {
        name: PosView(online=s.online, since=rfc3339(s.since), detail=s.detail)
        for name, s in runtime.health.states.items()
    }
    age = round((now - oldest).total_seconds(), 3) if oldest else None
    return StatusView(
        version=bridge.__version__,
        started_at=rfc3339(runtime.started_at),
        now=rfc3339(now),
        pos_online=all(s.online for s in pos.values()),
        pos=pos,
        queue=QueueView(depth=queue.depth, applying=queue.applying, oldest_queued_age_seconds=age),
        needs_attention=queue.needs_attention,
        locations=[
            LocationView(
                loke_location_id=loc.location_id,
                name=loc.name,
                driver=loc.driver,
                pos_location=loc.pos_location,
                platform=loc.platform,
                source=loc.source,
            )
            for platform in runtime.platforms.values()
            for loc in platform.served_locations()
        ],
        connections=[
            ConnectionView(platform=c.platform, account=c.account, state=c.state, reason=c.reason)
            for platform in runtime.platforms.values()
            for c in await platform.connections()
        ],
    )
