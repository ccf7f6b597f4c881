"""What a running bridge is made of, shared with handlers through one typed app key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from bridge.config import Config
from bridge.services.health import PosHealth
from bridge.services.outbox import OutboxWorker
from bridge.services.payments import PaymentService
from bridge.store.payments import PaymentStore
from drivers.base import PosDriver


@dataclass
class Runtime:
    """Filled in by the app's cleanup contexts, in start order (``bridge/app.py``)."""

    config: Config
    clock: Callable[[], datetime]
    started_at: datetime
    drivers: dict[str, PosDriver] = field(default_factory=dict)
    _store: PaymentStore | None = None
    _health: PosHealth | None = None
    _payments: PaymentService | None = None
    _outbox: OutboxWorker | None = None

    @property
    def store(self) -> PaymentStore:
        assert self._store is not None, "store not started"
        return self._store

    @property
    def health(self) -> PosHealth:
        assert self._health is not None, "health not started"
        return self._health

    @property
    def payments(self) -> PaymentService:
        assert self._payments is not None, "payments not started"
        return self._payments

    @property
    def outbox(self) -> OutboxWorker:
        assert self._outbox is not None, "outbox not started"
        return self._outbox


RUNTIME = web.AppKey("runtime", Runtime)
