"""Watching one folder with watchfiles, with a known moment from which no change is missed.

``watchfiles.awatch`` sets up its watch when first iterated, so a file created between
"start watching" and that moment would go unnoticed until the next rescan.
:meth:`FolderWatch.start` returns only once the watch is in place; a caller then lists the
folder once and relies on the watch from there on. Both ends of file-drop use it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from watchfiles import Change, awatch

#: Changes closer together than this are reported as one batch (watchfiles' ``step``): each
#: hop of a request costs about this much; 1 ms costs ~1 % of a core per idle watch (measured).
WATCH_STEP_MS = 1
#: Longest a burst of changes is grouped before it is reported (watchfiles' ``debounce``).
WATCH_DEBOUNCE_MS = 50


class FolderWatch:
    """Changes in one folder (not recursive); an empty batch after ``quiet_ms`` without any."""

    def __init__(
        self, folder: Path, *, quiet_ms: int, polling: bool = False, poll_interval_ms: int = 300
    ) -> None:
        self._stop = asyncio.Event()
        self._changes = awatch(
            folder,
            watch_filter=None,
            debounce=WATCH_DEBOUNCE_MS,
            step=WATCH_STEP_MS,
            rust_timeout=quiet_ms,
            yield_on_timeout=True,
            force_polling=polling,
            poll_delay_ms=poll_interval_ms,
            recursive=False,
            stop_event=self._stop,
        )
        self._first: asyncio.Future[set[tuple[Change, str]]] | None = None

    async def start(self) -> None:
        """Return once the watch is in place.

        Raises:
            OSError: the folder cannot be watched (e.g. it does not exist).
        """
        self._first = asyncio.ensure_future(anext(self._changes))
        await asyncio.sleep(0)  # awatch builds its watcher before its first await
        if self._first.done() and self._first.exception() is not None:
            failed, self._first = self._first, None
            failed.result()

    async def changed(self) -> set[str]:
        """The paths changed since the last call; empty after a quiet spell.

        Raises:
            OSError, RuntimeError: the watch broke (watchfiles' errors for a vanished path).
        """
        if self._first is not None:
            first, self._first = self._first, None
            changes = await first
        else:
            changes = await anext(self._changes)
        return {path for _, path in changes}

    async def close(self) -> None:
        self._stop.set()
        if self._first is not None:
            self._first.cancel()
            # Closing must not raise: whatever ended the watch was reported to its reader.
            with contextlib.suppress(
                asyncio.CancelledError, StopAsyncIteration, OSError, RuntimeError
            ):
                await self._first
        with contextlib.suppress(RuntimeError):  # still running in a cancelled task
            await self._changes.aclose()
