"""The technician's local web pages: server-side templates, no front-end build, no script.

``setup_pages(app)`` is the one call the composition root makes: the template engine (Jinja2
through aiohttp-jinja2, templates in ``bridge/web/templates/``), the stylesheet under
``/admin/static/``, the guard (``guard.py``: never through the tunnel, logged in, CSRF) and
the pages (``routes.py``). To add a page: a handler on a ``RouteTableDef`` under
``/admin/…`` that calls :func:`~bridge.web.pages.render.render`, a template extending
``base.html``, an entry in :data:`~bridge.web.pages.render.NAV`, and
``app.add_routes(…)``; the guard covers it without being told.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bridge.web.pages.guard import PAGES_PREFIX, STATIC_PATH, is_page, pages_guard
from bridge.web.pages.overview import LocationRefs
from bridge.web.pages.render import NAV, NAV_ITEMS, SESSIONS, NavItem, render
from bridge.web.pages.routes import LOCATIONS, routes
from bridge.web.pages.session import Sessions

__all__ = ["PAGES_PREFIX", "NavItem", "is_page", "render", "setup_pages"]

_WEB = Path(__file__).resolve().parent.parent


def setup_pages(
    app: web.Application,
    locations: LocationRefs,
    more: Sequence[tuple[NavItem, web.RouteTableDef]] = (),
) -> None:
    """Serve the pages from ``app`` (before it starts); ``locations`` says which locations
    the overview shows, as the services name them (asked on each view, so links made while
    the bridge runs appear); ``more``: a platform's pages (``bridge/platforms/<name>/``),
    each with its navigation entry."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("bridge.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    app[LOCATIONS] = locations
    app[SESSIONS] = Sessions()  # a fresh random key per process (session.py says why)
    app.middlewares.append(pages_guard)
    app.router.add_static(STATIC_PATH, _WEB / "static", name="admin-static")
    app.add_routes(routes)
    app[NAV_ITEMS] = NAV + tuple(item for item, _ in more)
    for _, platform_routes in more:
        app.add_routes(platform_routes)
