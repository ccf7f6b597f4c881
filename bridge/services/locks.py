"""One lock per table bill, so payments on a bill are checked and applied one at a time.

Payments on different bills run concurrently; two guests splitting one bill, or a guest and
the outbox worker, take turns, so "amount ≤ balance − pending" holds when each is checked.
"""

from __future__ import annotations

import asyncio
import weakref


class BillLocks:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def for_table(self, location_id: str, table: int) -> asyncio.Lock:
        key = (location_id, table)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock
