"""What the kit runs against, what a check reports, and the state one run shares.

A :class:`KitTarget` builds fresh drivers (the crash check needs a second one, as a
restarted bridge would), names the POS location, and may carry a :class:`PosControl`. A
:class:`KitRun` hands each check its own table with an open bill, so checks that pay never
pay into each other's bills.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bridge.core.bill import Bill
from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction, PosDriver
from drivers.conformance.control import PosControl
from drivers.registry import load_driver

_T = TypeVar("_T")

#: Tables the kit looks at when it searches the POS for open bills.
MAX_TABLES_SCANNED = 50
#: The kit pays at least this much into a bill in two parts, so it needs this balance.
MIN_BALANCE_MINOR = 2


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict; ``detail`` says why it failed or was skipped, or what it saw."""

    name: str
    status: CheckStatus
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


class CheckFailed(Exception):
    """The driver broke a rule of the interface; the message says which."""


class CheckSkipped(Exception):
    """The check cannot run here (no POS control given); the message says why."""


@dataclass(slots=True)
class KitTarget:
    """A driver under test.

    Args:
        make_driver: builds a new, unopened driver for the POS under test each call.
        location: the POS's location name that holds the kit's tables.
        control: switches the POS off and on; ``None`` skips the checks that need it.
        call_timeout_s: how long one driver call may take, typed error included; set it
            above the driver's own reply timeout.
        recovery_s: how soon after the POS is back the driver must work again.
    """

    make_driver: Callable[[], PosDriver]
    location: str = "1"
    control: PosControl | None = None
    call_timeout_s: float = 15.0
    recovery_s: float = 20.0


def target_from_url(
    url: str,
    options: Mapping[str, Any] | None = None,
    *,
    location: str = "1",
    control: PosControl | None = None,
    data_dir: Path = Path("."),
    **limits: float,
) -> KitTarget:
    """A target whose drivers come from the registry, exactly as the bridge builds them.

    Raises:
        DriverConfigError: unknown scheme, a plugin that fails to import, or bad options
            (raised here, before any check runs, by building one driver).
    """
    parts = urlsplit(url)
    factory = load_driver(parts.scheme)
    settings = DriverSettings("conformance", parts, dict(options or {}), data_dir)

    def make_driver() -> PosDriver:
        return factory(DriverSettings(settings.name, parts, dict(settings.options), data_dir))

    make_driver()
    return KitTarget(make_driver, location, control, **limits)


@dataclass(slots=True)
class KitRun:
    """The state of one run of the kit: a run id, and the tables not yet paid into."""

    target: KitTarget
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    _next_table: int = 0
    _table_numbers: list[int] = field(default_factory=list)
    _payments: int = 0

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[PosDriver]:
        """A fresh driver, opened, and closed afterwards whatever happens."""
        driver = self.target.make_driver()
        await self.call(driver.open(), "open()")
        try:
            yield driver
        finally:
            await self.call(driver.close(), "close()")

    async def call(self, awaitable: Awaitable[_T], what: str) -> _T:
        """``awaitable``, or :class:`CheckFailed` if it hangs past the call timeout."""
        seconds = self.target.call_timeout_s
        try:
            async with asyncio.timeout(seconds) as deadline:
                return await awaitable
        except TimeoutError:
            if deadline.expired():
                raise CheckFailed(
                    f"{what} hung: no return and no error within {seconds:g} s"
                ) from None
            raise

    async def table_numbers(self, driver: PosDriver) -> list[int]:
        """The location's table numbers, sorted (read once per run)."""
        if not self._table_numbers:
            tables = await self.call(driver.list_tables(self.target.location), "list_tables")
            if not tables:
                raise CheckFailed(f"no tables at location {self.target.location!r}")
            self._table_numbers = sorted(t.number for t in tables)
        return self._table_numbers

    async def take_table(self, driver: PosDriver, why: str) -> Bill:
        """An open bill of at least MIN_BALANCE_MINOR that no other check of this run uses.

        Tables are tried in order, each at most once per run, and only as far as needed: a
        bill can take a second to read over a 9600-baud line.
        """
        numbers = (await self.table_numbers(driver))[:MAX_TABLES_SCANNED]
        while self._next_table < len(numbers):
            number = numbers[self._next_table]
            self._next_table += 1
            bill = await self.call(
                driver.get_open_bill(self.target.location, number), "get_open_bill"
            )
            if bill is not None and bill.balance.minor >= MIN_BALANCE_MINOR:
                return bill
        raise CheckFailed(
            f"not enough POS state for {why}: every check that pays needs its own table"
            f" with an open bill of at least {MIN_BALANCE_MINOR} minor units at location"
            f" {self.target.location!r} (see docs/drivers/conformance.md)"
        )

    def instruction(
        self, bill: Bill, amount: int, currency: str | None = None
    ) -> PaymentInstruction:
        """A payment on ``bill`` with a payment id no earlier run has used."""
        self._payments += 1
        currency = currency or bill.currency
        return PaymentInstruction(
            payment_id=f"kit-{self.run_id}-{self._payments}",
            location=self.target.location,
            table=bill.table,
            bill_ref=bill.id,
            amount=Money(amount, currency),
            tip=Money(0, currency),
            label="conformance kit",
        )

    def control(self, why: str) -> PosControl:
        if self.target.control is None:
            raise CheckSkipped(f"no POS control given (--control): cannot {why}")
        return self.target.control
