"""The simulated POS: real SQLite files, no mocks."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction, PosDriver
from drivers.errors import (
    DriverConfigError,
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    PosUnavailableError,
    UnknownTableError,
)
from drivers.registry import available_drivers, load_driver
from drivers.simulator.driver import SimulatorDriver


def settings(url="simulator:", **options):
    return DriverSettings("main", urlsplit(url), options)


@pytest.fixture(params=["memory", "file"])
async def sim(request, tmp_path):
    url = "simulator:" if request.param == "memory" else f"simulator://{tmp_path}/pos.sqlite3"
    driver = SimulatorDriver(settings(url, tables=5))
    await driver.open()
    yield driver
    await driver.close()


def instruction(bill, payment_id, amount, tip=0, currency=None):
    currency = currency or bill.currency
    return PaymentInstruction(
        payment_id, "1", bill.table, bill.id, Money(amount, currency), Money(tip, currency), "App"
    )


def test_simulator_is_registered_by_entry_point():
    assert "simulator" in available_drivers()
    assert load_driver("simulator") is SimulatorDriver
    assert isinstance(SimulatorDriver(settings()), PosDriver)


def test_unknown_scheme_is_a_config_error_naming_the_url():
    with pytest.raises(DriverConfigError) as caught:
        load_driver("com")
    assert caught.value.key == "url" and "unknown scheme 'com'" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"tables": 0}, "options.tables"),
        ({"tables": "5"}, "options.tables"),
        ({"currency": "USD"}, "options.currency"),
        ({"colour": "red"}, "options.colour"),
    ],
)
def test_bad_options_name_their_key(options, key):
    with pytest.raises(DriverConfigError) as caught:
        SimulatorDriver(settings(**options))
    assert caught.value.key == key


async def test_seeds_tables_with_open_bills(sim):
    tables = await sim.list_tables("1")
    assert [t.number for t in tables] == [1, 2, 3, 4, 5]
    bill = await sim.get_open_bill("1", 2)
    assert bill is not None and bill.is_open and bill.balance.minor > 0
    with pytest.raises(UnknownTableError):
        await sim.get_open_bill("1", 6)


async def test_apply_closes_the_bill_at_zero_and_find_payment_sees_it(sim):
    bill = await sim.get_open_bill("1", 1)
    part = await sim.apply_payment(instruction(bill, "p1", 100, tip=10))
    assert part.bill.balance.minor == bill.balance.minor - 100 and part.bill.is_open
    rest = await sim.apply_payment(instruction(bill, "p2", bill.balance.minor - 100))
    assert not rest.bill.is_open
    assert await sim.get_open_bill("1", 1) is None
    found = await sim.find_payment("1", "p1")
    assert found is not None and found.pos_reference == part.pos_reference
    assert (found.amount, found.tip) == (Money(100, "AUD"), Money(10, "AUD"))
    assert await sim.find_payment("1", "nope") is None


async def test_refusals_carry_a_reason_and_change_nothing(sim):
    bill = await sim.get_open_bill("1", 3)
    cases = [
        (instruction(bill, "a", bill.balance.minor + 1), "amount_exceeds_balance"),
        (instruction(bill, "b", 1, currency="NZD"), "currency_mismatch"),
    ]
    for bad, reason in cases:
        with pytest.raises(PaymentRefusedError) as caught:
            await sim.apply_payment(bad)
        assert caught.value.reason == reason
    assert sim.payments("1") == []


async def test_it_does_not_deduplicate_so_doubles_would_show(sim):
    bill = await sim.get_open_bill("1", 4)
    await sim.apply_payment(instruction(bill, "dup", 1))
    await sim.apply_payment(instruction(bill, "dup", 1))
    assert [p[0] for p in sim.payments("1")] == ["dup", "dup"]


async def test_state_survives_reopening_the_file(tmp_path):
    url = f"simulator://{tmp_path}/pos.sqlite3"
    first = SimulatorDriver(settings(url, tables=3))
    await first.open()
    bill = await first.get_open_bill("1", 1)
    await first.apply_payment(instruction(bill, "kept", 50))
    await first.close()
    second = SimulatorDriver(settings(url, tables=3))
    await second.open()
    assert (await second.find_payment("1", "kept")) is not None
    assert (await second.get_open_bill("1", 1)).balance.minor == bill.balance.minor - 50
    await second.close()


async def test_modes(sim):
    bill = await sim.get_open_bill("1", 5)
    sim.set_mode("offline")
    with pytest.raises(PosOfflineError):
        await sim.get_open_bill("1", 5)
    assert not (await sim.health()).online
    sim.set_mode("failing")
    with pytest.raises(PosUnavailableError):
        await sim.apply_payment(instruction(bill, "f", 1))
    assert sim.payments("1") == []
    sim.set_mode("lossy")
    with pytest.raises(PosTimeoutError):
        await sim.apply_payment(instruction(bill, "l", 1))
    assert [p[0] for p in sim.payments("1")] == ["l"]  # it landed; only the answer was lost
    sim.set_mode("online")
    assert (await sim.health()).online
    with pytest.raises(ValueError):
        sim.set_mode("sideways")


async def test_till_payment_and_new_guests(sim):
    bill = await sim.get_open_bill("1", 2)
    closed = sim.pay_at_till("1", 2, bill.balance.minor)
    assert not closed.is_open
    seated = sim.open_new_bill("1", 2)
    assert seated.id != bill.id and seated.is_open
    assert sim.open_new_bill("1", 2) == seated
