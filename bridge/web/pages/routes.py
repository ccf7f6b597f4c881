"""The technician's pages: log in with the admin token, log out, the overview.

Each handler reads its input, calls one function for its data (a view model, e.g.
``overview.py``) and renders a template (``bridge/web/templates/``); ``guard.py`` has already
refused tunnelled callers, strangers and forged forms.
"""

from __future__ import annotations

from aiohttp import web

from bridge.runtime import RUNTIME
from bridge.web.pages.guard import LOGIN_PATH, PAGES_PREFIX, safe_next
from bridge.web.pages.overview import LocationRefs, overview
from bridge.web.pages.render import SESSIONS, render, session_of
from bridge.web.pages.session import COOKIE_NAME, token_matches

routes = web.RouteTableDef()
#: Which locations the overview shows (``setup_pages``).
LOCATIONS = web.AppKey[LocationRefs]("pages-locations")


def _login_form(
    request: web.Request, next_page: str, error: str = "", status: int = 200
) -> web.Response:
    return render(request, "login.html", {"next": next_page, "error": error}, status=status)


@routes.get(LOGIN_PATH)
async def login_page(request: web.Request) -> web.Response:
    next_page = safe_next(request.query.get("next"))
    if session_of(request) is not None:
        raise web.HTTPSeeOther(next_page)
    return _login_form(request, next_page)


@routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.Response:
    """The admin token, compared in constant time; right: a new session cookie and 303 to
    the page asked for; wrong: the form again, 401, saying so."""
    runtime = request.app[RUNTIME]
    form = await request.post()
    given, next_field = form.get("token"), form.get("next")
    next_page = safe_next(next_field if isinstance(next_field, str) else None)
    if not isinstance(given, str) or not token_matches(given, runtime.config.bridge.admin_token):
        message = "That is not this bridge's admin token."
        if not runtime.config.bridge.admin_token:
            message = "This bridge has no admin token (bridge.admin_token): nobody can log in."
        return _login_form(request, next_page, message, status=401)
    _, cookie = request.app[SESSIONS].issue(runtime.clock().timestamp())
    response = web.HTTPSeeOther(next_page)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=request.app[SESSIONS].ttl_s,
        path=PAGES_PREFIX,
        httponly=True,
        samesite="Lax",
    )
    raise response


@routes.post(f"{PAGES_PREFIX}/logout")
async def logout(request: web.Request) -> web.Response:
    session = session_of(request)
    if session is not None:
        request.app[SESSIONS].revoke(session, request.app[RUNTIME].clock().timestamp())
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(COOKIE_NAME, path=PAGES_PREFIX)
    raise response


@routes.get(PAGES_PREFIX)
async def overview_page(request: web.Request) -> web.Response:
    view = await overview(request.app[RUNTIME], request.app[LOCATIONS]())
    return render(request, "overview.html", {"view": view})
