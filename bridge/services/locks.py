"""One lock per table bill, so payments on a bill are checked and applied one at a time.

Payments on different bills run concurrently; two guests splitting one bill, or a guest and
the outbox worker, take turns, so "amount ≤ balance − pending" holds when each is checked.

Why a count of holders and waiters: a table's entry lives while anyone holds or waits for
it, so the map never outgrows the payments in flight, whatever table numbers callers send.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class _TableLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holding or waiting


class BillLocks:
    def __init__(self) -> None:
        self._locks: dict[tuple[str, int], _TableLock] = {}

    def for_table(self, location_id: str, table: int) -> TableGuard:
        """``async with`` it to hold the table's bill alone."""
        return TableGuard(self._locks, (location_id, table))

    def __len__(self) -> int:
        """Tables with a holder or a waiter now."""
        return len(self._locks)


class TableGuard:
    """One ``async with`` on a table's lock; the table's entry goes with its last user."""

    __slots__ = ("_entry", "_key", "_locks")

    def __init__(self, locks: dict[tuple[str, int], _TableLock], key: tuple[str, int]) -> None:
        self._locks = locks
        self._key = key
        self._entry: _TableLock | None = None

    async def __aenter__(self) -> None:
        entry = self._locks.get(self._key)
        if entry is None:
            entry = self._locks[self._key] = _TableLock()
        entry.users += 1
        self._entry = entry
        try:
            await entry.lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user
            self._leave(entry)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entry = self._entry
        assert entry is not None  # entered
        entry.lock.release()
        self._leave(entry)

    def _leave(self, entry: _TableLock) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._locks[self._key]
