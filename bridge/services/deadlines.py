"""Deadlines for POS calls, checked on a coarse tick instead of a timer per call.

Why not ``asyncio.timeout``: every payment makes two POS calls and every bill fetch one, and
each ``asyncio.timeout`` costs a ``Timeout`` object, a timer scheduled and cancelled (under
uvloop a libuv timer handle made and closed), about 9 µs, measured: two of them were 4 % of
a payment's event-loop CPU, and most calls (an in-process POS, a quick wire) end long before
any deadline. Here a call costs a dict entry; one timer callback, armed only while calls are
outstanding, looks every :data:`TICK_S` for calls past their deadline and cancels their
tasks, exactly as ``asyncio.timeout`` would, ``TimeoutError`` included.

The price is precision: a call is cut up to one tick after its deadline (25 ms, against POS
deadlines of seconds; the smallest allowed, 0.05 s, can run to 0.075 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: How often outstanding calls are checked against their deadlines, seconds.
TICK_S = 0.025


class Deadlines:
    """Runs awaitables with a deadline each; one instance serves any number of tasks."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self._tick_s = tick_s
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, awaitable: Awaitable[T], seconds: float) -> T:
        """``await awaitable``, or ``TimeoutError`` once ``seconds`` have passed (give or take
        a tick). A cancellation from elsewhere stays a ``CancelledError``.

        Raises:
            RuntimeError: outside a task, or nested in another :meth:`run` of this instance.
        """
        task = asyncio.current_task()
        if task is None or task in self._due:
            if isinstance(awaitable, Coroutine):
                awaitable.close()  # never to run: no "never awaited" warning
            raise RuntimeError("Deadlines.run needs a task, and does not nest")
        loop = asyncio.get_running_loop()
        cancelling = task.cancelling()
        self._due[task] = loop.time() + seconds
        if self._timer is None:
            self._timer = loop.call_later(self._tick_s, self._tick, loop)
        ours = False
        try:
            return await awaitable
        except asyncio.CancelledError as exc:
            # As asyncio.timeout: ours only if no one else asked for the task's cancellation.
            if task in self._expired:
                ours = True
                if task.uncancel() <= cancelling:
                    raise TimeoutError from exc
            raise
        finally:
            del self._due[task]
            if task in self._expired:
                self._expired.discard(task)
                if not ours:  # expired as it finished: take the cancellation back
                    task.uncancel()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, due in self._due.items():
            if due <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self._tick_s, self._tick, loop) if self._due else None
