"""The technician's API: status, payments and their audit trails, simulator controls.

Every route here needs the admin token (``Authorization: Bearer <bridge.admin_token>``).
The ``/api/drivers/{driver}/simulator...`` routes serve any driver offering
:class:`~drivers.controls.SimulatorControls` (not only the simulator), so this module knows
no driver by name; a driver without it is 404 ``unknown_simulator``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

import bridge
from bridge.core.bill import Bill, BillItem, ItemKind
from bridge.core.payment import PaymentState
from bridge.http.auth import check_admin
from bridge.http.fields import Fields, parse_table_number
from bridge.http.json_body import decode_json
from bridge.platforms.loke.contract import bill_json, payment_status_json, rfc3339
from bridge.runtime import RUNTIME, Runtime
from common.errors import BadRequestError, ConflictError, NotFoundError
from drivers.controls import MODES, SimulatorControls, simulator_controls
from drivers.errors import DriverError

routes = web.RouteTableDef()


def _admin(request: web.Request) -> Runtime:
    runtime = request.app[RUNTIME]
    check_admin(request, runtime.config.admin_token)
    return runtime


@routes.get("/api/status")
async def status(request: web.Request) -> web.Response:
    runtime = _admin(request)
    now = runtime.clock()
    queue = await runtime.store.queue_status()
    oldest = queue.oldest_queued_at
    pos = {
        name: {"online": s.online, "since": rfc3339(s.since), "detail": s.detail}
        for name, s in runtime.health.states.items()
    }
    return web.json_response(
        {
            "version": bridge.__version__,
            "startedAt": rfc3339(runtime.started_at),
            "now": rfc3339(now),
            "posOnline": all(s["online"] for s in pos.values()),
            "pos": pos,
            "queue": {
                "depth": queue.depth,
                "applying": queue.applying,
                "oldestQueuedAgeSeconds": round((now - oldest).total_seconds(), 3)
                if oldest
                else None,
            },
            "needsAttention": queue.needs_attention,
            "locations": [
                {
                    "lokeLocationId": loc.loke_location_id,
                    "name": loc.name,
                    "driver": loc.driver,
                    "posLocation": loc.pos_location,
                }
                for loc in runtime.config.locations.values()
            ],
        }
    )


@routes.get("/api/payments")
async def list_payments(request: web.Request) -> web.Response:
    runtime = _admin(request)
    state_text = request.query.get("state", PaymentState.NEEDS_ATTENTION.value)
    try:
        state = PaymentState(state_text)
    except ValueError as exc:
        raise BadRequestError(
            "invalid_field",
            "state must be a payment state",
            {"field": "state", "expected": [s.value for s in PaymentState]},
        ) from exc
    payments = await runtime.store.payments_in_state(state)
    return web.json_response(
        {"state": state.value, "payments": [payment_status_json(p) for p in payments]}
    )


@routes.get("/api/payments/{platform}/{payment_id:[^/]+}")
async def payment_audit(request: web.Request) -> web.Response:
    """One payment with its whole audit trail: received → … → applied, with times."""
    runtime = _admin(request)
    platform, payment_id = request.match_info["platform"], request.match_info["payment_id"]
    payment = await runtime.store.get_payment(platform, payment_id)
    if payment is None:
        raise NotFoundError("unknown_payment", "no such payment", {"paymentId": payment_id[:128]})
    trail = await runtime.store.audit_trail(platform, payment_id)
    return web.json_response(
        {
            "payment": payment_status_json(payment),
            "audit": [
                {
                    "from": a.from_state.value if a.from_state else None,
                    "to": a.to_state.value,
                    "at": a.at.isoformat(),
                    "reason": a.reason,
                }
                for a in trail
            ],
        }
    )


@routes.post("/api/payments/{platform}/{payment_id:[^/]+}/retry")
async def payment_retry(request: web.Request) -> web.Response:
    """Send a payment that needs attention back to the outbox, once the bill is fixed."""
    runtime = _admin(request)
    platform, payment_id = request.match_info["platform"], request.match_info["payment_id"]
    fields = await _json(request)
    note = fields.string("reason", required=False, max_len=200) or "no reason given"
    fields.done()
    payment = await runtime.store.get_payment(platform, payment_id)
    if payment is None:
        raise NotFoundError("unknown_payment", "no such payment", {"paymentId": payment_id[:128]})
    if payment.state is not PaymentState.NEEDS_ATTENTION:
        raise ConflictError(
            "not_needs_attention",
            "only a payment that needs attention can be retried",
            {"state": payment.state.value},
        )
    requeued = await runtime.outbox.retry_by_hand(payment, note)
    return web.json_response(payment_status_json(requeued))


async def _simulator_table(
    request: web.Request,
) -> tuple[SimulatorControls, int, str, Fields]:
    """What every simulator table route reads first: controls, table, POS location, body."""
    runtime = _admin(request)
    controls = _simulator(runtime, request.match_info["driver"])
    table = parse_table_number(request.match_info["table"])
    fields = await _json(request)
    location = fields.string("posLocation", required=False, max_len=128) or "1"
    return controls, table, location, fields


def _simulator(runtime: Runtime, name: str) -> SimulatorControls:
    """The named driver's controls; 404 if there is no such driver or it offers none."""
    controls = simulator_controls(runtime.drivers.get(name))
    if controls is None:
        raise NotFoundError(
            "unknown_simulator", f"no simulator driver named {name!r}", {"driver": name[:64]}
        )
    return controls


async def _json(request: web.Request) -> Fields:
    return Fields(decode_json(await request.read() or b"{}"))  # as strict as the platforms' bodies


@routes.post("/api/drivers/{driver}/simulator")
async def simulator_mode(request: web.Request) -> web.Response:
    """Make the simulated POS ``online``, ``offline`` or ``failing``, optionally slow."""
    runtime = _admin(request)
    controls = _simulator(runtime, request.match_info["driver"])
    fields = await _json(request)
    mode = fields.choice("mode", controls.modes() & frozenset(MODES))  # never beyond the API
    latency = fields.minor_units("latencyMs", required=False, minimum=0)
    fields.done()
    assert mode is not None
    setting = controls.set_mode(mode, latency)
    await runtime.health.probe_all()
    return web.json_response(
        {"driver": request.match_info["driver"], "mode": mode, "latencyMs": setting.latency_ms}
    )


@routes.post("/api/drivers/{driver}/simulator/tables/{table}/bill")
async def simulator_seat(request: web.Request) -> web.Response:
    """Seat new guests: the table gets a fresh open bill if it has none."""
    controls, table, location, fields = await _simulator_table(request)
    fields.done()
    return web.json_response(bill_json(_sim_call(lambda: controls.open_new_bill(location, table))))


@routes.post("/api/drivers/{driver}/simulator/tables/{table}/items")
async def simulator_add_item(request: web.Request) -> web.Response:
    """A waiter adds a line to the open bill (its version changes: payers must re-fetch)."""
    controls, table, location, fields = await _simulator_table(request)
    item = BillItem(
        name=fields.string("name", max_len=100) or "",
        quantity=fields.minor_units("quantity", required=False) or 1,
        amount=fields.minor_units("amount") or 0,
        kind=ItemKind.ITEM,
    )
    fields.done()
    return web.json_response(bill_json(_sim_call(lambda: controls.add_item(location, table, item))))


@routes.post("/api/drivers/{driver}/simulator/tables/{table}/till-payments")
async def simulator_pay_at_till(request: web.Request) -> web.Response:
    """Staff take cash at the POS itself; the bridge only sees it by re-reading the bill."""
    controls, table, location, fields = await _simulator_table(request)
    amount = fields.minor_units("amount") or 0
    fields.done()
    bill = _sim_call(lambda: controls.pay_at_till(location, table, amount))
    return web.json_response(bill_json(bill))


def _sim_call(call: Callable[[], Bill]) -> Bill:
    """The POS's refusal (no such table, no open bill) as 409 ``simulator_refused``."""
    try:
        return call()
    except DriverError as exc:
        raise ConflictError("simulator_refused", str(exc), {}) from exc
