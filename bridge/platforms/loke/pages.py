"""The LOKE linking page: connect to LOKE, list its locations beside the POS's, link, unlink.

Under ``/admin/loke``, so the pages' guard (``bridge/web/pages/guard.py``) covers it: never
through the tunnel, logged in, CSRF on every form. Each handler does one thing and answers
303 back to the page (post/redirect/get), so a reload never links twice. What LOKE refuses
is shown on the page, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web
from yarl import URL

from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.api import LokeApiError, LokeLocation
from bridge.platforms.loke.oauth import LokeAuthError, LokeUnavailableError
from bridge.platforms.loke.services import LOKE_SERVICES, LokeServices
from bridge.platforms.loke.tokens import ReauthoriseError
from bridge.runtime import RUNTIME
from bridge.services.platform_status import PlatformConnection
from bridge.store.links import LocationLink
from bridge.web.pages import NavItem, render
from bridge.web.pages.render import error_page
from common.errors import ApiError

PAGE = "/admin/loke"
CALLBACK = f"{PAGE}/callback"
NAV = NavItem("LOKE", PAGE)
routes = web.RouteTableDef()


@dataclass
class OrganizationView:
    connection: PlatformConnection
    locations: list[LokeLocation] = field(default_factory=list)
    problem: str = ""


def _services(request: web.Request) -> LokeServices:
    services = request.app.get(LOKE_SERVICES)
    if services is None:
        raise web.HTTPNotFound(text="LOKE is not configured ([loke] in the bridge's file)")
    return services


def redirect_uri(request: web.Request, services: LokeServices) -> str:
    """``[loke] redirect_uri``, else this page's callback at the address the browser used."""
    return services.config.redirect_uri or f"{request.url.origin()}{CALLBACK}"


@routes.get(PAGE)
async def loke_page(request: web.Request) -> web.Response:
    services = _services(request)
    runtime = request.app[RUNTIME]
    organizations = []
    for connection in await runtime.platforms[PLATFORM].connections():
        view = OrganizationView(connection)
        if connection.state == "ok":
            try:
                view.locations = await services.api.locations(connection.account)
            except (LokeApiError, ReauthoriseError) as exc:
                view.problem = str(exc)
        organizations.append(view)
    links: list[LocationLink] = services.linking.links()
    context = {
        "organizations": organizations,
        "links": [link for link in links if link.active],
        "unlinked": [link for link in links if not link.active],
        "linked_ids": {link.location_id for link in links if link.active},
        "drivers": list(runtime.drivers),
        "public_url": services.linking.public_url(),
        "message": request.query.get("message", ""),
    }
    response = render(request, "loke_links.html", context)
    # "Connect" posts here and is redirected to LOKE's issuer: form-action covers redirects.
    issuer = URL(services.config.issuer).origin()
    policy = response.headers["Content-Security-Policy"]
    response.headers["Content-Security-Policy"] = policy.replace(
        "form-action 'self'", f"form-action 'self' {issuer}"
    )
    return response


@routes.post(f"{PAGE}/connect")
async def connect(request: web.Request) -> web.Response:
    """Start the code flow: to LOKE's consent page, PKCE and ``state`` kept for the callback."""
    services = _services(request)
    form = await request.post()
    organization = form.get("organization")
    try:
        url = await services.connector.authorization_url(
            redirect_uri(request, services), organization if isinstance(organization, str) else None
        )
    except (LokeAuthError, LokeUnavailableError) as exc:
        return error_page(request, 502, "LOKE cannot be reached", str(exc))
    raise web.HTTPSeeOther(url)


@routes.get(CALLBACK)
async def callback(request: web.Request) -> web.Response:
    """LOKE sends the browser back here: the tokens, kept under each organisation they reach."""
    services = _services(request)
    try:
        tokens = await services.connector.complete(request.query)
        organizations = await services.api.organizations(token=tokens.access_token)
        await services.tokens.store_new([o.id for o in organizations], tokens)
    except LokeAuthError as exc:
        return error_page(request, 400, "LOKE did not connect", f"{exc.code}: {exc.message}")
    except (LokeUnavailableError, LokeApiError) as exc:
        return error_page(request, 502, "LOKE cannot be reached", str(exc))
    names = ", ".join(o.name or o.id for o in organizations) or "no organisation"
    raise web.HTTPSeeOther(f"{PAGE}?{_query(f'Connected: {names}')}")


@routes.post(f"{PAGE}/links")
async def link(request: web.Request) -> web.Response:
    services = _services(request)
    form = await request.post()
    fields = {
        k: form.get(k) for k in ("organization", "location", "name", "driver", "pos_location")
    }
    if not all(isinstance(v, str) and v for k, v in fields.items() if k != "name"):
        return error_page(
            request,
            400,
            "Link refused",
            "organization, location, driver and POS location are required",
        )
    values = {k: v if isinstance(v, str) else "" for k, v in fields.items()}
    try:
        done = await services.linking.link(
            values["organization"],
            values["location"],
            values["name"],
            values["driver"],
            values["pos_location"],
        )
    except ApiError as exc:
        return error_page(request, exc.status, "Link refused", exc.message)
    message = f"Linked {done.name}" + (f" (LOKE: {done.last_error})" if done.last_error else "")
    raise web.HTTPSeeOther(f"{PAGE}?{_query(message)}")


@routes.post(PAGE + "/links/{location}/unlink")
async def unlink(request: web.Request) -> web.Response:
    services = _services(request)
    try:
        done = await services.linking.unlink(request.match_info["location"])
    except ApiError as exc:
        return error_page(request, exc.status, "Unlink refused", exc.message)
    message = f"Unlinked {done.name}" + (f" (LOKE: {done.last_error})" if done.last_error else "")
    raise web.HTTPSeeOther(f"{PAGE}?{_query(message)}")


def _query(message: str) -> str:
    return urlencode({"message": message})
