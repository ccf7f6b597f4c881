"""The composition root: ``create_app(config)`` builds the whole bridge.

One cleanup context per resource, in start order (store → drivers → services → scheduler →
tunnel client, when ``[tunnel]`` is configured);
aiohttp runs each one's cleanup only if its start succeeded, in reverse order. Tests, the
demo, the CLI and the benchmarks all build the bridge here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import bridge
from bridge.config import Config
from bridge.contracts.openapi import merge_parts
from bridge.platforms.loke import PLATFORM as LOKE
from bridge.platforms.loke import addon_openapi, addon_routes
from bridge.platforms.loke import openapi as loke_openapi
from bridge.platforms.loke import pages as loke_page
from bridge.platforms.loke import routes as loke_routes
from bridge.platforms.loke.backend import LOKE_BACKEND, LokeBackend
from bridge.platforms.loke.contract import LokeRenderer
from bridge.platforms.loke.locations import LokeLocations
from bridge.platforms.loke.services import LOKE_SERVICES, TOKEN_CHECK_S
from bridge.platforms.loke.services import build as build_loke
from bridge.platforms.loke.status import LokeStatus
from bridge.runtime import RUNTIME, Runtime
from bridge.services.health import PosHealth
from bridge.services.locks import BillLocks
from bridge.services.operations import PosOperations
from bridge.services.outbox import OutboxWorker
from bridge.services.payment_answers import PaymentRenderer
from bridge.services.payments import PaymentService
from bridge.services.pos_calls import PosCalls
from bridge.services.snapshots import FLUSH_INTERVAL_S, BillSnapshots
from bridge.services.steps import PaymentSteps
from bridge.store.database import Database
from bridge.store.oauth_tokens import OAuthTokens
from bridge.store.payments import PaymentStore
from bridge.uplink.client import make_uplink
from bridge.web import admin
from bridge.web import openapi as admin_openapi
from bridge.web.pages import setup_pages
from common.middleware import error_middleware
from common.settings import ConfigError
from drivers.base import DriverSettings, PosDriver
from drivers.errors import DriverConfigError
from drivers.registry import DriverLoadError, load_driver
from drivers.unloaded import UnloadedDriver

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_drivers(config: Config) -> dict[str, PosDriver]:
    """Construct (not open) every configured driver.

    A driver whose plugin fails to import is logged and replaced by an
    :class:`UnloadedDriver`, so the other drivers' locations keep working.

    Raises:
        ConfigError: naming ``drivers.<name>.<key>`` for an unknown scheme or bad option.
    """
    drivers: dict[str, PosDriver] = {}
    for name, driver_config in config.drivers.items():
        try:
            factory = load_driver(driver_config.scheme)
        except DriverLoadError as exc:
            logger.error("drivers.%s: %s; its locations answer pos_offline", name, exc.message)
            drivers[name] = UnloadedDriver(driver_config.scheme, exc.message)
            continue
        except DriverConfigError as exc:
            raise ConfigError(f"drivers.{name}.{exc.key}", exc.message) from exc
        try:
            drivers[name] = factory(
                DriverSettings(
                    name, driver_config.url, dict(driver_config.options), config.bridge.data_dir
                )
            )
        except DriverConfigError as exc:
            raise ConfigError(f"drivers.{name}.{exc.key}", exc.message) from exc
        except Exception as exc:  # a plugin's bug, not the config's: skip that driver only
            logger.exception("drivers.%s: driver %r failed to start", name, driver_config.scheme)
            reason = f"driver {driver_config.scheme!r} failed to start: {exc!r}"
            drivers[name] = UnloadedDriver(driver_config.scheme, reason)
    return drivers


#: The open store and the opened drivers, for the contexts after theirs (``_services``).
_STORE = web.AppKey("store", PaymentStore)
_DRIVERS = web.AppKey[dict[str, PosDriver]]("drivers")


def create_app(config: Config, *, clock: Callable[[], datetime] = utc_now) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.server.max_body_bytes
    )
    started_at = clock()
    app.cleanup_ctx.append(partial(_store, config))
    app.cleanup_ctx.append(partial(_drivers, config))
    app.cleanup_ctx.append(partial(_services, config, clock, started_at))
    app.cleanup_ctx.append(_scheduler)
    if config.tunnel is not None:  # last to start: the relay sees the bridge only when ready
        make_uplink(app, config.tunnel, config.bridge.data_dir)
    app.add_routes(loke_routes.routes)
    app.add_routes(admin.routes)
    app.add_routes(addon_routes.routes)
    loke_pages = [(loke_page.NAV, loke_page.routes)] if config.loke is not None else []
    setup_pages(app, lambda: [served.ref for served in app[LOKE_BACKEND].locations], loke_pages)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/healthz", _healthz)
    return app


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


#: The routes this module adds itself, for the OpenAPI document.
_OWN_PATHS = {
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1."}},
        }
    },
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness.",
            "responses": {"200": {"description": "Alive."}},
        }
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    """The bridge's HTTP contract as one OpenAPI 3.1 document: LOKE's URLs, the technician's
    API and the routes above, each part made where its routes are. Served at
    ``/openapi.json``, printed by ``pos-bridge openapi``; cached, it never changes while the
    bridge runs."""
    info = {
        "title": "POS Bridge: LOKE pay-at-table URLs",
        "version": bridge.__version__,
        "description": "The URLs a venue's POS Bridge serves to LOKE (through the relay), "
        "and the technician's API. See docs/loke-pay-at-table.md.",
    }
    parts = (
        loke_openapi.openapi_part(),
        addon_openapi.openapi_part(),
        admin_openapi.openapi_part(),
        {"paths": _OWN_PATHS},
    )
    return merge_parts(info, parts)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _store(config: Config, app: web.Application) -> AsyncIterator[None]:
    db = Database(config.database_path)
    await db.open()
    app[_STORE] = PaymentStore(db)
    yield
    await db.close()


async def _drivers(config: Config, app: web.Application) -> AsyncIterator[None]:
    drivers = build_drivers(config)
    opened: list[PosDriver] = []
    try:
        for name, driver in drivers.items():
            try:
                await driver.open()
            except Exception as exc:  # a plugin's bug must not stop the other drivers
                logger.exception("drivers.%s: open() failed; its locations answer 503", name)
                reason = f"driver {type(driver).__name__} failed to open: {exc!r}"
                drivers[name] = UnloadedDriver(type(driver).__name__, reason)
                continue
            opened.append(driver)
        app[_DRIVERS] = drivers
        yield
    finally:
        for driver in reversed(opened):
            await driver.close()


async def _services(
    config: Config, clock: Callable[[], datetime], started_at: datetime, app: web.Application
) -> AsyncIterator[None]:
    """Build the services once (the only place that does), recover, and start the outbox;
    then the whole :class:`Runtime`, and each platform's adapter over the operations."""
    store, drivers = app[_STORE], app[_DRIVERS]
    health = PosHealth(drivers, clock)
    locks = BillLocks()
    snapshots = BillSnapshots()
    pos = PosCalls(drivers, health, config.payments.pos_timeout_s)
    # How each platform words a stored answer, by the platform's name in its payments.
    renderers: dict[str, PaymentRenderer] = {LOKE: LokeRenderer()}
    outbox_due = asyncio.Event()
    retry = (config.outbox.retry_initial_s, config.outbox.retry_max_s)
    steps = PaymentSteps(store, pos, renderers, snapshots, clock, outbox_due.set, *retry)
    loke_locations = LokeLocations(config.locations)
    outbox = OutboxWorker(
        store, steps, loke_locations.refs, locks, config.outbox, clock, outbox_due
    )
    payments = PaymentService(store, steps, pos, locks, snapshots, config.payments, clock)
    operations = PosOperations(payments, store)
    app[RUNTIME] = Runtime(
        config,
        clock,
        started_at,
        store,
        drivers,
        health,
        payments,
        outbox,
        operations,
        {LOKE: LokeStatus(loke_locations, OAuthTokens(store.db) if config.loke else None)},
    )
    app[LOKE_BACKEND] = LokeBackend(operations, loke_locations)
    session = aiohttp.ClientSession() if config.loke is not None else None
    if session is not None:  # the addon: linking page, tokens, LOKE's API
        app[LOKE_SERVICES] = await build_loke(
            config, store.db, loke_locations, operations, clock, session
        )
    health.on_recovery(outbox.pos_recovered)
    await outbox.recover()
    await health.probe_all()
    task = asyncio.create_task(outbox.run(), name="outbox")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await payments.flush_snapshots()
    if session is not None:
        await session.close()


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Periodic jobs: POS health probes, writing the bills kept in memory
    (``services/snapshots.py``), and forgetting replay records past retention."""
    runtime = app[RUNTIME]
    config = runtime.config

    async def prune() -> None:
        cutoff = runtime.clock() - config.payments.idempotency_retention
        removed = await runtime.store.prune_idempotency(cutoff)
        if removed:
            logger.info("forgot %d idempotency record(s) older than %s", removed, cutoff)

    def quiet(job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        # A job cut short by the shutdown below ends quietly: APScheduler would log the
        # cancellation as the job's failure, traceback and all (a stop during start-up).
        async def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await job()

        return run

    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    scheduler.add_job(
        quiet(runtime.health.probe_all),
        "interval",
        seconds=config.health.probe_interval_s,
        id="pos-health",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        quiet(prune),
        "interval",
        hours=6,
        id="prune-idempotency",
        next_run_time=runtime.clock(),
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        quiet(runtime.payments.flush_snapshots),
        "interval",
        seconds=FLUSH_INTERVAL_S,
        id="bill-snapshots",
        max_instances=1,
        coalesce=True,
    )
    if LOKE_SERVICES in app:
        loke = app[LOKE_SERVICES]
        scheduler.add_job(
            quiet(loke.tokens.refresh_due),
            "interval",
            seconds=TOKEN_CHECK_S,
            id="loke-token-refresh",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            quiet(loke.linking.reconcile),
            "interval",
            seconds=loke.config.republish_interval_s,
            id="loke-republish",
            max_instances=1,
            coalesce=True,
        )
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
