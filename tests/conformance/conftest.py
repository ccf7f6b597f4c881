"""The drivers the conformance suite runs against, each with a POS the kit can switch off.

``simulator`` is always here. Every scheme with an emulator server (``SERVERS`` in
``drivers/emulator/run.py``) and an installed driver joins by itself: the emulator serves a
POS on a real port, pty or folder, the driver is built from the URL it prints, and the kit
switches the POS through the emulator's control API. Reference schemes not merged yet are
listed so the report shows them as skipped, with why.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.conformance import EmulatorControl, KitTarget, SimulatorControl, target_from_url
from drivers.emulator.run import make_pos, running_emulator
from drivers.registry import available_drivers
from tests.emulators import emulated_schemes, emulator_url

TABLES = 12  # more than the checks that pay need (one table each), as a vendor's POS would
REPLY_TIMEOUT_MS = 400  # the wire drivers' timeout_ms: a silent POS costs this per call


def driver_params() -> list[object]:
    params: list[object] = [pytest.param("simulator", id="simulator"), *emulated_schemes()]
    reason = "examples/acme-pos-driver is not installed (bash .ci/run installs it)"
    marks = [] if "acme" in available_drivers() else [pytest.mark.skip(reason=reason)]
    params.append(pytest.param("acme", id="acme", marks=marks))
    return params


@pytest.fixture(params=driver_params())
async def kit_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KitTarget]:
    """A driver of the parametrized kind, its test POS holding ``TABLES`` open bills."""
    scheme: str = request.param
    if scheme in ("simulator", "acme"):  # in process: switched by their set_mode()
        # acme:<name> is one of the plugin's in-memory POSes; a fresh one for each test
        url = f"simulator://{tmp_path / 'pos.sqlite3'}" if scheme == "simulator" else None
        url = url or f"acme:{uuid.uuid4().hex}"
        yield target_from_url(
            url, {"tables": TABLES}, control=SimulatorControl(), call_timeout_s=5, recovery_s=5
        )
        return
    url = emulator_url(scheme, tmp_path / "pos-folder")
    pos = make_pos(tmp_path / "pos.sqlite3", tables=TABLES)
    async with running_emulator(url, pos, control_port=0) as (driver_url, control_url):
        assert control_url is not None
        yield target_from_url(
            driver_url,
            {"timeout_ms": REPLY_TIMEOUT_MS},
            control=EmulatorControl(control_url),
            call_timeout_s=5,
            recovery_s=10,
        )
