"""A real browser for the technician's pages: Debian's chromium, headless, driven by
playwright's async API on the test's own event loop (the bridge under test runs on the same
loop, so nothing needs a thread), and :class:`Steps`, which keeps a full-page screenshot of
each step under ``test-artifacts/<test>/NN-<step>.png`` for a person to look at.

The chromium comes from ``POS_BRIDGE_CHROMIUM`` or ``/usr/bin/chromium`` (``.ci/run``
installs Debian's package); without one the browser tests skip, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
DEFAULT_CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str:
    """The chromium to drive, or a skip naming what was looked for."""
    path = os.environ.get("POS_BRIDGE_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"no chromium at {path} (set POS_BRIDGE_CHROMIUM, or apt-get install chromium)")
    return path


class Steps:
    """Numbered screenshots of one test: ``await steps(page, "login")`` saves
    ``test-artifacts/<test>/01-login.png``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        shutil.rmtree(folder, ignore_errors=True)  # a rerun's steps only, never a stale one
        folder.mkdir(parents=True)

    async def __call__(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{_safe(name)}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "step"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page in a context of its own (no cookies from another test)."""
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(10_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
def step(request: pytest.FixtureRequest) -> Steps:
    return Steps(ARTIFACTS / _safe(request.node.name))
