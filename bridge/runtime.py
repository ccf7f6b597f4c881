"""What a running bridge is made of, shared with handlers through one typed app key.

Built once, whole, by the services' cleanup context (``bridge/app.py``) when the store, the
drivers and the services are running, and never changed after: a handler that can read
``app[RUNTIME]`` can use every part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from bridge.config import Config
from bridge.services.health import PosHealth
from bridge.services.operations import PosOperations
from bridge.services.outbox import OutboxWorker
from bridge.services.payments import PaymentService
from bridge.services.platform_status import PlatformStatus
from bridge.store.payments import PaymentStore
from drivers.base import PosDriver


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    clock: Callable[[], datetime]
    started_at: datetime
    store: PaymentStore
    drivers: Mapping[str, PosDriver]
    health: PosHealth
    payments: PaymentService
    outbox: OutboxWorker
    operations: PosOperations
    #: Each platform's locations and connection state, by platform name.
    platforms: Mapping[str, PlatformStatus]


RUNTIME = web.AppKey("runtime", Runtime)
