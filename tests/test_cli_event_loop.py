"""Which event loop ``pos-bridge serve`` runs on: uvloop when installed, unless told not to."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from bridge.cli.main import event_loop_factory


def test_asyncio_loop_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POS_BRIDGE_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None


def test_uvloop_when_installed_else_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POS_BRIDGE_EVENT_LOOP", raising=False)
    factory = event_loop_factory()
    if importlib.util.find_spec("uvloop") is None:
        assert factory is None
        return
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
