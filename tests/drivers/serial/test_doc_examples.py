"""docs/drivers/serial.md shows the bytes the codec sends, its CRC check value and timers."""

from __future__ import annotations

import re
from pathlib import Path

from drivers.serial.frames import CRC_CHECK, OVERHEAD_BYTES, frame_from_bytes
from drivers.serial.settings import LineSettings, Timers
from tests.drivers.serial.doc_examples import EXAMPLES, as_hex

DOC = Path(__file__).resolve().parents[3] / "docs" / "drivers" / "serial.md"
BLOCK = re.compile(r"<!-- example: ([\w-]+) -->\n```text\n(.*?)\n```", re.DOTALL)


def test_every_example_in_the_doc_is_what_the_codec_sends() -> None:
    shown = dict(BLOCK.findall(DOC.read_text()))
    assert set(shown) == set(EXAMPLES)
    for name, data in EXAMPLES.items():
        assert shown[name] == as_hex(data), f"{name}: regenerate with doc_examples.py"
        frame_from_bytes(bytes.fromhex(shown[name].replace("\n", " ")))  # and it parses


def test_the_doc_states_the_crc_parameters_and_check_value() -> None:
    text = DOC.read_text()
    assert f"0x{CRC_CHECK:04X}" in text and "0x1021" in text and "0xFFFF" in text


def test_the_docs_timer_table_is_what_the_codec_waits() -> None:
    rows = re.findall(
        r"^\| (\d+) \| ([\d.]+) ms \| (\d+) ms \| (\d+) ms \| (\d+) ms \|$",
        DOC.read_text(),
        re.MULTILINE,
    )
    assert len(rows) == 4
    for baud, char_ms, ack_100, ack_1000, idle in rows:
        timers = Timers(LineSettings(int(baud)))
        assert f"{timers.line.wire_time(1) * 1000:.3f}" == char_ms
        assert round(timers.ack_timeout(OVERHEAD_BYTES + 100) * 1000) == int(ack_100)
        assert round(timers.ack_timeout(OVERHEAD_BYTES + 1000) * 1000) == int(ack_1000)
        assert round(timers.resync_idle * 1000) == int(idle)
