"""File-drop fixtures: a real folder in tmp_path, the emulated POS serving it in this event
loop, the driver on it, and a "hand" POS for tests that must write files a certain way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction
from drivers.emulator.pos import EmulatedPos
from drivers.emulator.run import make_pos, running_emulator
from drivers.filedrop import files, naming
from drivers.filedrop.driver import FileDropDriver
from drivers.wire.messages import Request

LOCATION = "1"
#: Every bounded wait in these tests gives up after this long (pytest-timeout is the backstop).
WAIT_S = 10.0


def make_driver(url: str, **options: Any) -> FileDropDriver:
    return FileDropDriver(DriverSettings("file-test", urlsplit(url), options))


async def eventually(check: Callable[[], bool], what: str, within: float = WAIT_S) -> None:
    """Wait until ``check()`` holds; fail naming ``what`` if it does not within ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


async def instruction(pos: EmulatedPos, payment_id: str, table: int = 1) -> PaymentInstruction:
    """A payment of 100 minor units on the table's open bill, read from the POS itself."""
    bill = await pos.simulator.get_open_bill(LOCATION, table)
    assert bill is not None
    return PaymentInstruction(
        payment_id=payment_id,
        location=LOCATION,
        table=table,
        bill_ref=bill.id,
        amount=Money(100, bill.balance.currency),
        tip=Money(0, bill.balance.currency),
        label="test",
    )


def payments_on_pos(state: Path, payment_id: str) -> int:
    """How many times the POS holds ``payment_id``: read from its own file, not through any
    driver (the emulator's ``pos`` fixture keeps its bills in ``tmp_path/pos.sqlite3``)."""
    with contextlib.closing(sqlite3.connect(state)) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM sim_payments WHERE location = ? AND payment_id = ?",
            (LOCATION, payment_id),
        ).fetchone()
    return int(row[0])


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "pos.sqlite3"


@pytest.fixture
def pos(state: Path) -> EmulatedPos:
    return make_pos(state, tables=5)


@pytest.fixture
async def emulator(spool: Path, pos: EmulatedPos) -> AsyncIterator[str]:
    """The emulated POS serving ``spool``; yields the bridge's driver URL."""
    async with running_emulator(f"file://{spool}", pos) as (url, _control):
        yield url


@pytest.fixture
async def driver(emulator: str) -> AsyncIterator[FileDropDriver]:
    driver = make_driver(emulator, timeout_ms=2000)
    await driver.open()
    yield driver
    await driver.close()


class HandPos:
    """A POS played by the test, one file operation at a time."""

    def __init__(self, root: Path) -> None:
        self.requests = root / naming.REQUESTS_DIR
        self.responses = root / naming.RESPONSES_DIR

    async def take(self) -> tuple[naming.MessageName, Request]:
        """Wait for the next complete request, read it and take it (delete it)."""
        found: list[naming.MessageName] = []

        def ready() -> bool:
            parsed = [naming.MessageName.parse(n) for n in listing(self.requests)]
            found[:] = [p for p in parsed if p is not None]
            return bool(found)

        await eventually(ready, "a request file")
        name = found[0]
        path = self.requests / name.to_name()
        request = naming.decode_request_file(path.read_bytes(), name.request_id)
        assert files.remove(path)
        return name, request

    def answer(self, name: naming.MessageName, result: dict[str, Any]) -> Path:
        """Write a response the proper way (temporary name, fsync, rename)."""
        body = json.dumps({"id": name.request_id, "ok": True, "result": result}).encode()
        files.write_atomically(self.responses, name.response().to_name(), body)
        return self.responses / name.response().to_name()
