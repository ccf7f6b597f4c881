"""Which POS emulators the suites run drivers against, parametrized from ``SERVERS``.

A scheme joins the conformance suite and the crash test by itself once its emulator server
is in ``drivers/emulator/run.py`` ``SERVERS`` and its driver is registered; the reference
schemes not merged yet show up as skipped, saying what is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.emulator.run import SERVERS
from drivers.registry import available_drivers

#: Where each reference emulator serves; any other scheme in SERVERS gets a TCP port.
EMULATOR_URLS = {
    "serial": "serial:pty",
    "tcp": "tcp://127.0.0.1:0",
    "file": "file://{folder}",
}


def emulator_url(scheme: str, folder: Path) -> str:
    """The URL to start ``scheme``'s emulator on; ``folder`` is created for file-drop."""
    folder.mkdir(parents=True, exist_ok=True)
    return EMULATOR_URLS.get(scheme, f"{scheme}://127.0.0.1:0").format(folder=folder)


def emulated_schemes() -> list[object]:
    """One pytest param per scheme, skipped with the reason while it cannot run."""
    installed = available_drivers()
    params: list[object] = []
    for scheme in sorted({*EMULATOR_URLS, *SERVERS}):
        reason = ""
        if scheme not in SERVERS:
            reason = f"no {scheme!r} emulator server in drivers/emulator/run.py SERVERS yet"
        elif scheme not in installed:
            reason = f"no {scheme!r} driver registered under pos_bridge.drivers"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(scheme, id=scheme, marks=marks))
    return params
