"""The owner's end of a worker's channel: each call runs on this process's LOKE backend.

A call's task is not cancelled when its worker goes away: a payment being taken finishes
(stored, applied or queued, its answer kept for the platform's retry) exactly as it does
when a platform hangs up on the bridge's own HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bridge.answers import Answer, error_answer, json_answer
from bridge.errors import INTERNAL_ERROR, ApiError
from bridge.platforms.loke.backend import LokeBackend
from bridge.workers import frames
from bridge.workers.channel import FramedChannel
from bridge.workers.frames import ChannelProtocolError

logger = logging.getLogger(__name__)

_INTERNAL = json_answer(INTERNAL_ERROR, 500)


class OwnerEndpoint(FramedChannel):
    """Serves one worker's calls; ``on_hello`` runs when the worker says it serves."""

    def __init__(self, backend: LokeBackend, on_hello: Callable[[], None]) -> None:
        super().__init__()
        self._backend = backend
        self._on_hello = on_hello
        self._tasks: set[asyncio.Task[None]] = set()

    def data_received(self, data: bytes) -> None:
        try:
            received = self._reader.feed(data)
        except ChannelProtocolError as exc:
            logger.error("worker channel: %s; closing it", exc)
            self.abort()
            return
        for kind, call_id, payload in received:
            if kind == frames.HELLO:
                self._on_hello()
                continue
            task = asyncio.create_task(self._serve(kind, call_id, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, kind: int, call_id: int, payload: bytes) -> None:
        try:
            answer = await self._call(kind, frames.decode_args(payload))
        except ApiError as error:
            answer = error_answer(error)
        except Exception:
            logger.exception("worker call of kind %d failed", kind)
            answer = _INTERNAL
        if self.open:
            self.send(frames.encode_answer(call_id, answer))

    async def _call(self, kind: int, args: list[Any]) -> Answer:
        backend = self._backend
        if kind == frames.PAYMENT:
            return await backend.take_payment(*frames.payment_from_args(args))
        if kind == frames.BILL:
            return await backend.open_bill(args[0], args[1])
        if kind == frames.TABLES:
            return await backend.tables(args[0])
        if kind == frames.PAYMENT_STATUS:
            return await backend.payment_status(args[0], args[1])
        raise ChannelProtocolError(f"no call of kind {kind}")
