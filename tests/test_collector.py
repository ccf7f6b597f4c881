"""The collector settings a serving process takes (``bridge/cli/collector.py``), in a fresh
interpreter: they are process-wide, and this one is pytest's."""

from __future__ import annotations

import subprocess
import sys

from bridge.cli import collector


def test_settle_freezes_start_up_and_spaces_collections_out() -> None:
    code = (
        "import gc; from bridge.cli import collector; collector.settle();"
        " print(gc.get_threshold(), gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    expected = (collector.YOUNG, collector.OLDER, collector.OLDER)
    assert out == f"{expected} True"
