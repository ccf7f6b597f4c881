"""Who may see the technician's pages: only a caller on the venue's network, logged in, and
for a form that changes something, with the session's CSRF token.

One middleware, so that every page under ``/admin`` (the LOKE linking pages too) is guarded
by default and a new page cannot forget it:

1. A request that came through the relay's tunnel (the uplink marks each one,
   ``bridge/uplink/forward.py``) gets the same 404 as a path that does not exist: the pages
   are for the technician at the venue, and the internet learns nothing of them.
2. Not logged in: 303 to ``/admin/login?next=<the page>``; only the login page and the
   stylesheet are open.
3. ``POST`` (any unsafe method) without the session's CSRF token in the form: a 403 page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from bridge.runtime import RUNTIME
from bridge.uplink.forward import TUNNELLED_HEADER
from bridge.web.pages.render import CSRF_FIELD, SESSION, SESSIONS, error_page
from bridge.web.pages.session import COOKIE_NAME
from common.middleware import Handler

#: Where the pages live; everything under it is guarded here.
PAGES_PREFIX = "/admin"
LOGIN_PATH = "/admin/login"
STATIC_PATH = "/admin/static"
#: The routes (by their resource's path) open without a session.
PUBLIC = frozenset({LOGIN_PATH, STATIC_PATH})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_page(path: str) -> bool:
    return path == PAGES_PREFIX or path.startswith(PAGES_PREFIX + "/")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a page of ours, never another site (``//evil``,
    ``/\\evil``, ``https://…``)."""
    if not target or not is_page(target.partition("?")[0]) or "//" in target or "\\" in target:
        return PAGES_PREFIX
    return target


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    target = request.rel_url.path_qs if request.method in _SAFE_METHODS else PAGES_PREFIX
    return web.HTTPSeeOther(f"{LOGIN_PATH}?{urlencode({'next': safe_next(target)})}")


def _route_path(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
async def pages_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_page(request.path):
        return await handler(request)
    if TUNNELLED_HEADER in request.headers:
        raise web.HTTPNotFound()  # as any unknown path: the error middleware's JSON 404
    now = request.app[RUNTIME].clock().timestamp()
    session = request.app[SESSIONS].verify(request.cookies.get(COOKIE_NAME), now)
    if session is not None:
        request[SESSION] = session
    if _route_path(request) in PUBLIC:
        return await handler(request)
    if session is None:
        raise login_redirect(request)
    if request.method not in _SAFE_METHODS:
        form = await request.post()
        if not request.app[SESSIONS].csrf_ok(session, form.get(CSRF_FIELD)):
            return error_page(
                request,
                403,
                "Refused",
                "This form was not sent from this bridge's own page (no or wrong CSRF "
                "token). Go back, reload the page and try again.",
            )
    return await handler(request)
