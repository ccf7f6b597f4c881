"""The browser fixtures (``browser.py``) for every test of the technician's pages."""

from tests.web.pages.browser import browser, page, step

__all__ = ["browser", "page", "step"]
