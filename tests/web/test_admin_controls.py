"""The admin API's simulator routes serve any driver offering ``SimulatorControls``.

The two drivers below are registered the way a vendor's package registers one: an installed
distribution with a ``pos_bridge.drivers`` entry point, here a dist-info folder put on
``sys.path`` for one test. So the bridge builds them through its real registry and knows
nothing of them, the way it knows nothing of a vendor's test driver.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp.test_utils import TestClient

from bridge.app import create_app
from bridge.core.bill import Bill, BillItem
from bridge.core.money import Money
from bridge.runtime import RUNTIME
from drivers.base import DriverHealth, DriverInfo, DriverSettings, PaymentInstruction, PosPayment
from drivers.base import Table as PosTable
from drivers.controls import ModeSetting, SimulatorControls, simulator_controls
from drivers.errors import PaymentRefusedError, PosOfflineError, UnknownTableError
from drivers.simulator import model
from tests.conftest import (
    ADMIN_AUTH,
    LOKE_AUTH,
    ClientFactory,
    config_data,
    fetch_bill,
    loke_url,
    make_config,
)

TABLES = 4
SIM_ROUTES = [
    ("/api/drivers/pos/simulator", {"mode": "online"}),
    ("/api/drivers/pos/simulator/tables/2/bill", {}),
    ("/api/drivers/pos/simulator/tables/2/items", {"name": "Tea", "amount": 450}),
    ("/api/drivers/pos/simulator/tables/2/till-payments", {"amount": 100}),
]


class TinyDriver:
    """A complete driver with nothing more: tables 1-4 anywhere, bills kept in memory."""

    info: ClassVar[DriverInfo] = DriverInfo("tiny", "0", "test driver without controls")

    def __init__(self, settings: DriverSettings) -> None:
        self.bills: dict[tuple[str, int], Bill] = {}
        self.offline = False

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_tables(self, location: str) -> list[PosTable]:
        self._check()
        return [PosTable(n, f"Table {n}") for n in range(1, TABLES + 1)]

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        self._check()
        bill = self._bill(location, table)
        return bill if bill.is_open else None

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        raise PaymentRefusedError("bill_closed", "this test POS takes no payments")

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None:
        return None

    async def health(self) -> DriverHealth:
        return DriverHealth(not self.offline, "tiny POS", datetime.now(UTC))

    def _check(self) -> None:
        if self.offline:
            raise PosOfflineError("tiny POS is off")

    def _bill(self, location: str, table: int) -> Bill:
        if not 1 <= table <= TABLES:
            raise UnknownTableError(location, table)
        if (location, table) not in self.bills:
            rng = random.Random(f"tiny:{location}:{table}")
            now = datetime.now(UTC)
            self.bills[location, table] = model.make_bill(location, table, 1, now, rng, "AUD")
        return self.bills[location, table]


class ControlledTinyDriver(TinyDriver):
    """The same POS, offering the technician's controls (and only two modes of them)."""

    info: ClassVar[DriverInfo] = DriverInfo("tinyctl", "0", "test driver with controls")

    def __init__(self, settings: DriverSettings) -> None:
        super().__init__(settings)
        self.latency_ms = 0

    def modes(self) -> frozenset[str]:
        return frozenset({"online", "offline"})

    def set_mode(self, mode: str, latency_ms: int | None = None) -> ModeSetting:
        self.offline = mode == "offline"
        self.latency_ms = self.latency_ms if latency_ms is None else latency_ms
        return ModeSetting(mode, self.latency_ms)

    def open_new_bill(self, location: str, table: int) -> Bill:
        return self._bill(location, table)

    def add_item(self, location: str, table: int, item: BillItem) -> Bill:
        bill = self._bill(location, table)
        self.bills[location, table] = replace(bill, items=(*bill.items, item))
        return self.bills[location, table]

    def pay_at_till(self, location: str, table: int, amount: int) -> Bill:
        bill = self._bill(location, table)
        till = PaymentInstruction(
            "till", location, table, bill.id, Money(amount, "AUD"), Money(0, "AUD"), "Cash"
        )
        self.bills[location, table] = model.apply_payment(bill, till, "TILL", datetime.now(UTC))
        return self.bills[location, table]


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tiny:`` and ``tinyctl:`` installed, as a vendor's package would be, for this test."""
    site = tmp_path / "site"
    dist = site / "tiny_test_drivers-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-test-drivers\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[pos_bridge.drivers]\n"
        f"tiny = {__name__}:TinyDriver\n"
        f"tinyctl = {__name__}:ControlledTinyDriver\n"
    )
    monkeypatch.syspath_prepend(str(site))


async def bridge_with(aiohttp_client: ClientFactory, tmp_path: Path, scheme: str) -> TestClient:
    """The usual bridge plus a driver ``pos`` of ``scheme`` serving location ``loc-tiny``."""
    data = config_data(tmp_path)
    data["drivers"]["pos"] = {"url": f"{scheme}:"}
    data["locations"]["loc-tiny"] = {**data["locations"]["loc-main"], "driver": "pos"}
    return await aiohttp_client(create_app(make_config(tmp_path, **data)))


async def post(client: TestClient, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(path, json=body, headers=ADMIN_AUTH)
    return response.status, await response.json()


def test_the_simulator_offers_controls_and_the_tiny_driver_does_not() -> None:
    from urllib.parse import urlsplit

    from drivers.simulator.driver import SimulatorDriver

    settings = DriverSettings("x", urlsplit("simulator:"))
    assert isinstance(SimulatorDriver(settings), SimulatorControls)
    assert simulator_controls(ControlledTinyDriver(settings)) is not None
    assert simulator_controls(TinyDriver(settings)) is None


@pytest.mark.usefixtures("registered")
async def test_another_driver_offers_controls_through_the_admin_api(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await bridge_with(aiohttp_client, tmp_path, "tinyctl")
    driver = client.app[RUNTIME].drivers["pos"]
    assert type(driver) is ControlledTinyDriver

    status, body = await post(client, SIM_ROUTES[0][0], {"mode": "offline", "latencyMs": 40})
    assert (status, body) == (200, {"driver": "pos", "mode": "offline", "latencyMs": 40})
    state = await (await client.get("/api/status", headers=ADMIN_AUTH)).json()
    assert state["pos"]["pos"]["online"] is False  # the route probed health after switching
    status, body = await post(client, SIM_ROUTES[0][0], {"mode": "lossy"})
    assert status == 400 and body["error"] == "invalid_field", body  # a mode it cannot play
    assert body["message"].endswith("one of offline, online"), body
    status, body = await post(client, SIM_ROUTES[0][0], {"mode": "online"})
    assert (status, body) == (200, {"driver": "pos", "mode": "online", "latencyMs": 40})

    before = await fetch_bill_at(client, 2)
    status, added = await post(client, *SIM_ROUTES[2])
    assert status == 200 and added["items"][-1]["name"] == "Tea", added
    assert (await fetch_bill_at(client, 2))["balance"] == before["balance"] + 450
    status, paid = await post(client, *SIM_ROUTES[3])
    assert status == 200 and paid["balance"] == before["balance"] + 450 - 100, paid
    status, seated = await post(client, *SIM_ROUTES[1])
    assert status == 200 and seated["id"] == before["id"], seated

    status, body = await post(client, "/api/drivers/pos/simulator/tables/9/bill", {})
    assert status == 409 and body["error"] == "simulator_refused", body
    assert (await fetch_bill(client, 3))["balance"] > 0  # the simulator's location still serves


async def fetch_bill_at(client: TestClient, table: int) -> dict[str, Any]:
    response = await client.get(loke_url(table, location="loc-tiny"), headers=LOKE_AUTH)
    assert response.status == 200, await response.text()
    return dict(await response.json())


@pytest.mark.usefixtures("registered")
async def test_a_driver_without_controls_gets_404_unknown_simulator(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await bridge_with(aiohttp_client, tmp_path, "tiny")
    assert type(client.app[RUNTIME].drivers["pos"]) is TinyDriver  # loaded, not a stand-in
    assert (await fetch_bill_at(client, 2))["balance"] > 0
    for path, body in SIM_ROUTES:
        status, error = await post(client, path, body)
        assert status == 404, (path, error)
        assert error == {
            "error": "unknown_simulator",
            "message": "no simulator driver named 'pos'",
            "details": {"driver": "pos"},
        }
