"""The emulator's control API, so tests, demos and technicians can misbehave the POS.

``GET /faults`` → the faults; ``PUT /faults`` with a JSON object of changes (e.g.
``{"silent": true}``) → the faults after; ``POST /reboot`` with ``{"seconds": 2}``;
``GET /state`` → requests seen, and whether it is rebooting. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from drivers.emulator.pos import EmulatedPos

POS_KEY = web.AppKey("pos", EmulatedPos)


def control_app(pos: EmulatedPos) -> web.Application:
    app = web.Application()
    app[POS_KEY] = pos
    app.router.add_get("/faults", _get_faults)
    app.router.add_put("/faults", _put_faults)
    app.router.add_post("/reboot", _reboot)
    app.router.add_get("/state", _state)
    return app


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[POS_KEY].faults.as_dict())


async def _put_faults(request: web.Request) -> web.Response:
    pos = request.app[POS_KEY]
    changes = await _json_object(request)
    try:
        pos.faults.update(changes)
    except ValueError as exc:
        return _error("bad_fault", str(exc))
    return web.json_response(pos.faults.as_dict())


async def _reboot(request: web.Request) -> web.Response:
    body = await _json_object(request)
    seconds = body.get("seconds", 1)
    if type(seconds) not in (int, float) or not 0 <= seconds <= 600:
        return _error("bad_seconds", "seconds: must be a number from 0 to 600")
    request.app[POS_KEY].reboot(float(seconds))
    return web.json_response({"rebooting_for": seconds})


async def _state(request: web.Request) -> web.Response:
    pos = request.app[POS_KEY]
    return web.json_response({"requests_seen": pos.requests_seen, "rebooting": pos.rebooting})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad_json", "message": "body is not JSON"}),
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad_json", "message": "body must be an object"}),
            content_type="application/json",
        )
    return body


def _error(code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=400)
