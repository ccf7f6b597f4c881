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

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bridge.config import Config
from bridge.http import admin
from bridge.http.middleware import error_middleware
from bridge.platforms.loke import routes as loke_routes
from bridge.platforms.loke.backend import LOKE_BACKEND, LocalLokeBackend
from bridge.platforms.loke.contract import LokeRenderer
from bridge.platforms.loke.openapi import openapi_document
from bridge.runtime import RUNTIME, Runtime
from bridge.services.health import PosHealth
from bridge.services.locks import BillLocks
from bridge.services.outbox import OutboxWorker
from bridge.services.payments import PaymentService
from bridge.services.snapshots import FLUSH_INTERVAL_S
from bridge.store.database import Database
from bridge.store.payments import PaymentStore
from bridge.toml_table import ConfigError
from bridge.uplink.client import make_uplink
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
                    name, driver_config.url, dict(driver_config.options), config.data_dir
                )
            )
        except DriverConfigError as exc:
            raise ConfigError(f"drivers.{name}.{exc.key}", exc.message) from exc
        except Exception as exc:  # a plugin's bug, not the config's: skip that driver only
            logger.exception("drivers.%s: driver %r failed to start", name, driver_config.scheme)
            reason = f"driver {driver_config.scheme!r} failed to start: {exc!r}"
            drivers[name] = UnloadedDriver(driver_config.scheme, reason)
    return drivers


def create_app(config: Config, *, clock: Callable[[], datetime] = utc_now) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.server.max_body_bytes
    )
    runtime = Runtime(config=config, clock=clock, started_at=clock())
    app[RUNTIME] = runtime
    app[LOKE_BACKEND] = LocalLokeBackend(runtime)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_drivers)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_scheduler)
    if config.tunnel is not None:  # last to start: the relay sees the bridge only when ready
        make_uplink(app, config.tunnel)
    app.add_routes(loke_routes.routes)
    app.add_routes(admin.routes)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/healthz", _healthz)
    return app


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _store(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    db = Database(runtime.config.database_path)
    await db.open()
    runtime._store = PaymentStore(db)
    yield
    await db.close()


async def _drivers(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    drivers = build_drivers(runtime.config)
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
        runtime.drivers = drivers
        yield
    finally:
        for driver in reversed(opened):
            await driver.close()


async def _services(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    config = runtime.config
    health = PosHealth(runtime.drivers, runtime.clock)
    locks = BillLocks()
    renderer = LokeRenderer()
    outbox = OutboxWorker(
        runtime.store,
        runtime.drivers,
        config.locations,
        health,
        locks,
        config.outbox,
        config.payments.pos_timeout_s,
        runtime.clock,
        renderer.queued,
    )
    runtime._health = health
    runtime._outbox = outbox
    runtime._payments = PaymentService(
        runtime.store,
        runtime.drivers,
        health,
        locks,
        config.payments,
        runtime.clock,
        outbox.wake,
    )
    health.on_recovery(outbox.pos_recovered)
    await outbox.recover()
    await health.probe_all()
    task = asyncio.create_task(outbox.run(), name="outbox")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await runtime.payments.flush_snapshots()


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
        seconds=config.health_probe_interval_s,
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
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
