"""The addon's public URLs under ``/.loke/`` (``addon_meta.py`` says what LOKE documents):
the metadata, an organisation's status, the configure page and the addon's icon.

Public: LOKE's dashboard (and anyone) reaches them through the relay at the venue's prefix,
so they show nothing a stranger could use. The configure page in particular does not link
the technician's pages: those are served only on the venue's network (never through the
tunnel, ``bridge/web/pages/guard.py``), so it says where to go instead of going there.
Without ``[loke]`` every one of them is 404 ``loke_not_configured``.
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

from bridge.config import LokeConfig
from bridge.platforms.loke.addon_meta import (
    CONFIGURE_PATH,
    ICON_PATH,
    META_PATH,
    STATUS_PATH,
    LinkedLocation,
    addon_meta,
    addon_status,
    public_prefix,
)
from bridge.platforms.loke.backend import LOKE_BACKEND
from bridge.platforms.loke.services import LOKE_SERVICES
from bridge.runtime import RUNTIME
from bridge.web.pages import render
from common.errors import BadRequestError, NotFoundError, ServiceUnavailableError

routes = web.RouteTableDef()

#: What an organisation id may be here (LOKE's are opaque ids; inferred bound).
_ORGANIZATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ICON = resources.files("bridge.web").joinpath("static", "loke-addon.svg")


def _loke(request: web.Request) -> LokeConfig:
    loke = request.app[RUNTIME].config.loke
    if loke is None:
        raise NotFoundError(
            "loke_not_configured", "this bridge is not a LOKE addon (no [loke] in its config)"
        )
    return loke


def _prefix(request: web.Request, loke: LokeConfig) -> str:
    prefix = public_prefix(loke, request.app[RUNTIME].config.tunnel)
    if prefix is None:
        raise ServiceUnavailableError(
            "loke_public_url_unknown",
            "the bridge does not know its public URL: set [loke] public_url or [tunnel]",
        )
    return prefix


@routes.get(META_PATH)
async def meta(request: web.Request) -> web.Response:
    loke = _loke(request)
    return web.json_response(addon_meta(loke, _prefix(request, loke)).json_body())


@routes.get(STATUS_PATH + "/{organization_id}")
async def status(request: web.Request) -> web.Response:
    """The organisation's configuration here: its connection (``ok``, ``reauthorise``,
    ``none``) and the locations served for it (the file's, which name no organisation,
    and those linked on the page under it)."""
    _loke(request)
    organization_id = request.match_info["organization_id"]
    if not _ORGANIZATION_ID.fullmatch(organization_id):
        raise BadRequestError(
            "invalid_organization_id",
            "organizationId must be 1 to 128 letters, digits or . _ : -",
            {"field": "organizationId"},
        )
    services = request.app[LOKE_SERVICES]
    links = [
        LinkedLocation(
            location_id=served.location_id, linked_by="config" if served.from_file else "page"
        )
        for served in request.app[LOKE_BACKEND].locations
        if served.from_file or served.organization_id == organization_id
    ]
    connection = services.tokens.state(organization_id)
    return web.json_response(addon_status(organization_id, connection, links).json_body())


@routes.get(CONFIGURE_PATH)
async def configure(request: web.Request) -> web.Response:
    _loke(request)
    return render(request, "loke_configure.html", {})


@routes.get(ICON_PATH)
async def icon(request: web.Request) -> web.Response:
    _loke(request)
    return web.Response(
        body=_ICON.read_bytes(),
        content_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
