"""The kit's POS switches reach the real thing: the emulator's control API, the simulator."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer

from drivers.base import DriverSettings
from drivers.conformance import EmulatorControl, SimulatorControl
from drivers.emulator.control import control_app
from drivers.emulator.run import make_pos
from drivers.errors import DriverConfigError
from drivers.simulator.driver import SimulatorDriver


async def test_emulator_control_switches_the_emulated_pos_faults() -> None:
    pos = make_pos(None)
    server = TestServer(control_app(pos), host="127.0.0.1")
    await server.start_server()
    try:
        control = EmulatorControl(str(server.make_url("/")))
        driver = SimulatorDriver(DriverSettings("x", urlsplit("simulator:")))  # not used
        await control.offline(driver)
        assert pos.faults.silent and not pos.faults.drop_replies
        await control.lose_replies(driver)
        assert pos.faults.drop_replies
        await control.online(driver)
        assert pos.faults.as_dict() == {
            "silent": False,
            "delay_ms": 0,
            "corrupt_per_mille": 0,
            "drop_replies": False,
        }
        await control.restart(driver, 5)
        assert pos.rebooting
    finally:
        await server.close()


def test_emulator_control_wants_an_http_url() -> None:
    with pytest.raises(DriverConfigError) as caught:
        EmulatorControl("127.0.0.1:9000")
    assert caught.value.key == "control"


async def test_simulator_control_restart_comes_back_by_itself() -> None:
    driver = SimulatorDriver(DriverSettings("x", urlsplit("simulator:")))
    control = SimulatorControl()
    await control.restart(driver, 0.05)
    assert driver.control.mode == "offline"
    await control.lose_replies(driver)
    assert driver.control.mode == "lossy"
    await control.online(driver)  # cancels the pending "back online" too
    assert driver.control.mode == "online"
