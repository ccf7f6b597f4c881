"""Which POS emulators the suites run drivers against, parametrized from ``SERVERS``.

A scheme joins the conformance suite and the crash test by itself once its emulator server
is in ``drivers/emulator/run.py`` ``SERVERS`` and its driver is registered. The three
reference schemes are required: if one goes missing, its tests fail saying what is missing
(a skip would let a lost driver pass CI unnoticed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.emulator.run import SERVERS

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
    """One pytest param per scheme. Nothing is skipped: a reference scheme whose emulator or
    driver went missing fails in ``server_for`` or ``load_driver``, naming what is missing."""
    return [pytest.param(scheme, id=scheme) for scheme in sorted({*EMULATOR_URLS, *SERVERS})]
