"""How the bridge's HTTP answers write a moment: RFC 3339 in UTC, to the second. Pure.

One definition for every answer that shows a time as ``format: date-time`` (LOKE's bills and
payments, the technician's status and payments); the audit trail's ``at`` is
``isoformat()``, as it always was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=4096)
def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC, to the second. Cached: a bill's times are the same on every fetch.
    Equal datetimes are the same instant, so they format alike whatever their zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
