"""The technician's API: status, payments and their audit trails, simulator controls.

Every route here needs the admin token (``Authorization: Bearer <bridge.admin_token>``).
The ``/api/drivers/{driver}/simulator...`` routes serve any driver offering
:class:`~drivers.controls.SimulatorControls` (not only the simulator), so this module knows
no driver by name; a driver without it is 404 ``unknown_simulator``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from bridge.contracts.fields import Reply, parse_table_number
from bridge.contracts.json_body import decode_json
from bridge.contracts.validation import validate
from bridge.core.bill import Bill, BillItem, ItemKind
from bridge.core.payment import PaymentState
from bridge.runtime import RUNTIME, Runtime
from bridge.web.admin_bodies import (
    PaymentsQuery,
    RetryRequest,
    SimulatorItemRequest,
    SimulatorModeRequest,
    SimulatorTableRequest,
    TillPaymentRequest,
)
from bridge.web.auth import check_admin
from bridge.web.status import status_view
from bridge.web.views import ModeView, PaymentList, audit_view, bill_view, payment_view
from common.errors import BadRequestError, ConflictError, NotFoundError
from drivers.controls import MODES, SimulatorControls, simulator_controls
from drivers.errors import DriverError

routes = web.RouteTableDef()
B = TypeVar("B", bound=BaseModel)
T = TypeVar("T", bound=SimulatorTableRequest)


def _json(view: Reply) -> web.Response:
    return web.json_response(view.json_body())


def _admin(request: web.Request) -> Runtime:
    runtime = request.app[RUNTIME]
    check_admin(request, runtime.config.bridge.admin_token)
    return runtime


@routes.get("/api/status")
async def status(request: web.Request) -> web.Response:
    return _json(await status_view(_admin(request)))


@routes.get("/api/payments")
async def list_payments(request: web.Request) -> web.Response:
    runtime = _admin(request)
    query = validate(PaymentsQuery, {k: request.query.getone(k) for k in request.query})
    state = query.state
    payments = await runtime.store.payments_in_state(state)
    return _json(PaymentList(state=state, payments=[payment_view(p) for p in payments]))


@routes.get("/api/payments/{platform}/{payment_id:[^/]+}")
async def payment_audit(request: web.Request) -> web.Response:
    """One payment with its whole audit trail: received → … → applied, with times."""
    runtime = _admin(request)
    platform, payment_id = request.match_info["platform"], request.match_info["payment_id"]
    payment = await runtime.store.get_payment(platform, payment_id)
    if payment is None:
        raise NotFoundError("unknown_payment", "no such payment", {"paymentId": payment_id[:128]})
    trail = await runtime.store.audit_trail(platform, payment_id)
    return _json(audit_view(payment, trail))


@routes.post("/api/payments/{platform}/{payment_id:[^/]+}/retry")
async def payment_retry(request: web.Request) -> web.Response:
    """Send a payment that needs attention back to the outbox, once the bill is fixed."""
    runtime = _admin(request)
    platform, payment_id = request.match_info["platform"], request.match_info["payment_id"]
    note = (await _body(request, RetryRequest)).reason or "no reason given"
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
    return _json(payment_view(requeued))


async def _simulator_table(
    request: web.Request, model: type[T]
) -> tuple[SimulatorControls, int, str, T]:
    """What every simulator table route reads first: controls, table, body, POS location."""
    runtime = _admin(request)
    controls = _simulator(runtime, request.match_info["driver"])
    table = parse_table_number(request.match_info["table"])
    body = await _body(request, model)
    return controls, table, body.pos_location or "1", body


def _simulator(runtime: Runtime, name: str) -> SimulatorControls:
    """The named driver's controls; 404 if there is no such driver or it offers none."""
    controls = simulator_controls(runtime.drivers.get(name))
    if controls is None:
        raise NotFoundError(
            "unknown_simulator", f"no simulator driver named {name!r}", {"driver": name[:64]}
        )
    return controls


async def _body(request: web.Request, model: type[B]) -> B:
    """The body as ``model``, as strict as the platforms' bodies; an empty body is ``{}``."""
    return validate(model, decode_json(await request.read() or b"{}"))


@routes.post("/api/drivers/{driver}/simulator")
async def simulator_mode(request: web.Request) -> web.Response:
    """Make the simulated POS ``online``, ``offline`` or ``failing``, optionally slow."""
    runtime = _admin(request)
    controls = _simulator(runtime, request.match_info["driver"])
    body = await _body(request, SimulatorModeRequest)
    mode = body.mode
    offered = controls.modes() & frozenset(MODES)
    if mode not in offered:  # this driver plays fewer modes than the API names
        expected = "one of " + ", ".join(sorted(offered))
        raise BadRequestError(
            "invalid_field", f"mode must be {expected}", {"field": "mode", "expected": expected}
        )
    setting = controls.set_mode(mode, body.latency_ms)
    await runtime.health.probe_all()
    return _json(
        ModeView(driver=request.match_info["driver"], mode=mode, latency_ms=setting.latency_ms)
    )


@routes.post("/api/drivers/{driver}/simulator/tables/{table}/bill")
async def simulator_seat(request: web.Request) -> web.Response:
    """Seat new guests: the table gets a fresh open bill if it has none."""
    controls, table, location, _ = await _simulator_table(request, SimulatorTableRequest)
    return _json(bill_view(_sim_call(lambda: controls.open_new_bill(location, table))))


@routes.post("/api/drivers/{driver}/simulator/tables/{table}/items")
async def simulator_add_item(request: web.Request) -> web.Response:
    """A waiter adds a line to the open bill (its version changes: payers must re-fetch)."""
    controls, table, location, body = await _simulator_table(request, SimulatorItemRequest)
    item = BillItem(
        name=body.name, quantity=body.quantity or 1, amount=body.amount, kind=ItemKind.ITEM
    )
    return _json(bill_view(_sim_call(lambda: controls.add_item(location, table, item))))


@routes.post("/api/drivers/{driver}/simulator/tables/{table}/till-payments")
async def simulator_pay_at_till(request: web.Request) -> web.Response:
    """Staff take cash at the POS itself; the bridge only sees it by re-reading the bill."""
    controls, table, location, body = await _simulator_table(request, TillPaymentRequest)
    amount = body.amount
    bill = _sim_call(lambda: controls.pay_at_till(location, table, amount))
    return _json(bill_view(bill))


def _sim_call(call: Callable[[], Bill]) -> Bill:
    """The POS's refusal (no such table, no open bill) as 409 ``simulator_refused``."""
    try:
        return call()
    except DriverError as exc:
        raise ConflictError("simulator_refused", str(exc), {}) from exc
