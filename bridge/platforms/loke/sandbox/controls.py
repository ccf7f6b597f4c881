"""The sandbox's own controls under ``/_sandbox/`` (JSON): failure injection, the calls it
answered, page size, what locations published, and simulated guests paying a bill.

Not LOKE's: these are how tests, the demo and a technician steer the sandbox. They take no
token (the sandbox listens on 127.0.0.1) and no injected fault. Secrets never leave here.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from pydantic import Field

from bridge.platforms.loke.sandbox.errors import LokeError, parse, read_json
from bridge.platforms.loke.sandbox.guests import Registration, pay_bill
from bridge.platforms.loke.sandbox.keys import STATE
from bridge.platforms.loke.sandbox.platform_api import StrictBody, pay_at_table_view
from bridge.platforms.loke.sandbox.state import Fault

routes = web.RouteTableDef()


class FaultBody(StrictBody):
    path: str = Field(min_length=1, max_length=1000, pattern=r"^/")
    #: 0: no status change (only the delay).
    status: int = Field(0, ge=0, le=599)
    count: int = Field(1, ge=1, le=10_000)
    delay_s: float = Field(0.0, ge=0, le=120)


class ApiSettingsBody(StrictBody):
    page_size: int = Field(ge=1, le=1000)


class GuestsBody(StrictBody):
    organization_id: str = Field(min_length=1)
    location_id: str = Field(min_length=1)
    table: int = Field(ge=1, le=999_999)
    splits: int = Field(1, ge=1, le=20)
    tip_minor: int = Field(0, ge=0, le=100_000)
    timeout_s: float = Field(10.0, gt=0, le=120)
    retries: int = Field(3, ge=0, le=20)


def _fault_json(fault: Fault) -> dict[str, Any]:
    return {
        "path": fault.path,
        "status": fault.status,
        "count": fault.count,
        "delayS": fault.delay_s,
    }


@routes.post("/_sandbox/faults")
async def add_fault(request: web.Request) -> web.Response:
    body: FaultBody = parse(FaultBody, await read_json(request))
    if body.status and body.status < 400:
        raise LokeError(400, "validation", "status must be 0 or 400-599", field="status")
    state = request.app[STATE]
    state.faults.append(Fault(body.path, body.status, body.count, body.delay_s))
    return web.json_response({"faults": [_fault_json(f) for f in state.faults]}, status=201)


@routes.get("/_sandbox/faults")
async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [_fault_json(f) for f in request.app[STATE].faults]})


@routes.delete("/_sandbox/faults")
async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.Response(status=204)


@routes.get("/_sandbox/calls")
async def list_calls(request: web.Request) -> web.Response:
    return web.json_response({"calls": list(request.app[STATE].calls)})


@routes.delete("/_sandbox/calls")
async def clear_calls(request: web.Request) -> web.Response:
    request.app[STATE].calls.clear()
    return web.Response(status=204)


@routes.put("/_sandbox/settings/api")
async def api_settings(request: web.Request) -> web.Response:
    body: ApiSettingsBody = parse(ApiSettingsBody, await read_json(request))
    request.app[STATE].page_size = body.page_size
    return web.json_response({"pageSize": body.page_size})


@routes.get("/_sandbox/published")
async def published(request: web.Request) -> web.Response:
    locations = [
        {
            "organizationId": org,
            "locationId": loc,
            "tables": entry.tables,
            "payAtTable": pay_at_table_view(entry.pay_at_table) if entry.pay_at_table else None,
        }
        for (org, loc), entry in request.app[STATE].published.items()
    ]
    return web.json_response({"locations": locations})


@routes.post("/_sandbox/guests/pay")
async def guests_pay(request: web.Request) -> web.Response:
    body: GuestsBody = parse(GuestsBody, await read_json(request))
    entry = request.app[STATE].published.get((body.organization_id, body.location_id))
    if entry is None or entry.pay_at_table is None:
        raise LokeError(409, "not_registered", "that location registered no pay-at-table URLs")
    registration = Registration.from_published(entry.pay_at_table)
    async with aiohttp.ClientSession() as session:
        result = await pay_bill(
            session,
            registration,
            body.table,
            body.splits,
            tip_minor=body.tip_minor,
            timeout_s=body.timeout_s,
            retries=body.retries,
        )
    return web.json_response(result.as_json())
