"""Rendering a page: the template, plus what every page's layout needs (the nav, the
session's CSRF token, whether someone is logged in).

Pages call :func:`render` instead of ``aiohttp_jinja2.render_template`` so that a new page
(the LOKE linking pages) gets the layout's context without repeating it; a form puts
``{{ csrf_field() }}`` inside itself and the guard (``guard.py``) accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup, escape

from bridge.web.pages.session import Session, Sessions

#: The session of a request the guard let through (``None`` on the login page).
SESSION = web.RequestKey("pages-session", Session)
SESSIONS = web.AppKey("pages-sessions", Sessions)
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf"


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str


#: The layout's navigation, in order; a platform's pages add theirs (``setup_pages``).
NAV: tuple[NavItem, ...] = (NavItem("Overview", "/admin"),)
NAV_ITEMS = web.AppKey("pages-nav", tuple)


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION)


def csrf_token(request: web.Request) -> str:
    """The CSRF token of the request's session ("" when not logged in)."""
    session = session_of(request)
    return request.config_dict[SESSIONS].csrf_token(session) if session else ""


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` with ``context`` and the layout's own values."""
    token = csrf_token(request)
    field = Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(token))
    layout = {
        "nav": request.config_dict.get(NAV_ITEMS, NAV),
        "current": request.path,
        "logged_in": session_of(request) is not None,
        "csrf_token": token,
        "csrf_field": lambda: field,
    }
    response = aiohttp_jinja2.render_template(
        template, request, {**layout, **context}, status=status
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """A refusal as a page (a browser is reading), not as the API's JSON."""
    return render(request, "error.html", {"title": title, "message": message}, status=status)


#: No script at all, styles from the bridge (and the layout's inline ones), forms only to
#: the bridge, never framed (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
