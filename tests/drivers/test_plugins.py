"""Driver plugins: a vendor's package loads by name from config; a broken one is skipped.

The two example packages (``examples/acme-pos-driver``, ``examples/broken-pos-driver``) are
pip-installed by ``.ci/run``; run by hand without them, these tests skip and say so.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.app import build_drivers, create_app
from drivers.registry import available_drivers, check_drivers
from drivers.unloaded import UnloadedDriver
from tests.conftest import (
    ADMIN_AUTH,
    LOKE_AUTH,
    ClientFactory,
    config_data,
    fetch_bill,
    loke_url,
    make_config,
    payment_body,
)
from tests.crash.process import REPO, to_toml

INSTALL = "pip install ./examples/acme-pos-driver ./examples/broken-pos-driver (.ci/run does)"
needs_acme = pytest.mark.skipif(
    "acme" not in available_drivers(), reason=f"acme plugin not installed: {INSTALL}"
)
needs_broken = pytest.mark.skipif(
    "broken" not in available_drivers(), reason=f"broken plugin not installed: {INSTALL}"
)


def with_bad_driver(tmp_path: Path) -> dict[str, Any]:
    """The usual config plus a driver from the broken plugin, serving one more location."""
    data = config_data(tmp_path)
    data["drivers"]["bad"] = {"url": "broken:"}
    data["locations"]["loc-bad"] = {**data["locations"]["loc-main"], "driver": "bad"}
    return data


@needs_acme
async def test_acme_plugin_loads_by_name_from_config_and_serves_bills(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    config = make_config(tmp_path, drivers={"main": {"url": "acme:", "options": {"tables": 6}}})
    client: TestClient = await aiohttp_client(create_app(config))
    assert type(build_drivers(config)["main"]).__module__ == "acme_pos_driver"
    bill = await fetch_bill(client, 3)
    assert bill["balance"] > 0
    paid = await client.post(
        loke_url(3, "payments"),
        json=payment_body(bill, "acme-pay-1", bill["balance"]),
        headers=LOKE_AUTH,
    )
    assert paid.status == 201, await paid.text()
    gone = await client.get(loke_url(3), headers=LOKE_AUTH)
    assert gone.status == 404 and (await gone.json())["error"] == "no_open_bill"


@needs_broken
async def test_broken_plugin_is_logged_and_skipped_and_the_other_driver_serves(
    aiohttp_client: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, **with_bad_driver(tmp_path))
    with caplog.at_level(logging.ERROR):
        client: TestClient = await aiohttp_client(create_app(config))
    logged = [r.getMessage() for r in caplog.records]
    assert any("drivers.bad" in text and "libacme" in text for text in logged), logged

    assert (await fetch_bill(client, 2))["balance"] > 0  # the simulator's location works
    response = await client.get(loke_url(2, location="loc-bad"), headers=LOKE_AUTH)
    body = await response.json()
    assert response.status == 503 and body["error"] == "pos_offline"
    assert "driver 'broken' failed to load" in body["details"]["detail"]

    status = await (await client.get("/api/status", headers=ADMIN_AUTH)).json()
    assert status["pos"]["main"]["online"] is True
    assert status["pos"]["bad"]["online"] is False
    assert "libacme.so" in status["pos"]["bad"]["detail"]


@needs_broken
def test_a_broken_plugin_stands_in_as_an_unloaded_driver(tmp_path: Path) -> None:
    config = make_config(tmp_path, **with_bad_driver(tmp_path))
    drivers = build_drivers(config)
    assert isinstance(drivers["bad"], UnloadedDriver)
    assert not isinstance(drivers["main"], UnloadedDriver)
    assert "ImportError" in (check_drivers()["broken"] or "")
    assert check_drivers()["simulator"] is None


def check_config(tmp_path: Path, data: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bridge.toml"
    path.write_text(to_toml(data))
    return subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_acme
@needs_broken
def test_check_config_lists_installed_drivers_and_names_the_broken_one(tmp_path: Path) -> None:
    fine = check_config(tmp_path, config_data(tmp_path))
    assert fine.returncode == 0, fine.stderr
    listed = {line.split()[0]: line for line in fine.stdout.splitlines()[1:-1]}
    assert set(listed) >= {"simulator", "acme", "broken"}
    assert listed["acme"].endswith("acme_pos_driver:AcmeDriver  ok")
    assert "BROKEN: driver 'broken' failed to load" in listed["broken"]

    bad = check_config(tmp_path, with_bad_driver(tmp_path))
    assert bad.returncode == 1
    assert "drivers.bad: driver 'broken' failed to load" in bad.stderr
    assert "(loc-bad) answer 503 pos_offline" in bad.stderr


async def test_a_driver_that_fails_to_open_is_skipped_and_the_others_serve(
    aiohttp_client: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = config_data(tmp_path)
    missing = tmp_path / "no-such-folder" / "pos.sqlite3"  # SQLite cannot create it
    data["drivers"]["bad"] = {"url": f"simulator://{missing}"}
    data["locations"]["loc-bad"] = {**data["locations"]["loc-main"], "driver": "bad"}
    config = make_config(tmp_path, **data)
    with caplog.at_level(logging.ERROR):
        client: TestClient = await aiohttp_client(create_app(config))
    assert any("drivers.bad: open() failed" in r.getMessage() for r in caplog.records)
    assert (await fetch_bill(client, 1))["balance"] > 0
    response = await client.get(loke_url(1, location="loc-bad"), headers=LOKE_AUTH)
    body = await response.json()
    assert response.status == 503 and body["error"] == "pos_offline"
    assert "failed to open" in body["details"]["detail"]
