"""docs/drivers/tcp.md shows exactly the bytes the codec sends, and decodes them back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.tcp.codec import FrameReader
from tests.drivers.tcp.spec_examples import EXAMPLES, render_example

DOC = Path(__file__).resolve().parents[3] / "docs" / "drivers" / "tcp.md"
BLOCK = re.compile(r"<!-- hex:(?P<name>[\w-]+) -->\n```text\n(?P<body>.*?)\n```", re.S)


def doc_blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer(DOC.read_text())}


def test_the_page_shows_every_example_and_no_other():
    assert sorted(doc_blocks()) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_page_hex_equals_codec_output(name):
    assert doc_blocks()[name] == render_example(name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_page_hex_decodes_to_the_example_frames(name):
    hex_bytes = "".join(line[:47] for line in doc_blocks()[name].splitlines() if line)
    assert FrameReader().feed(bytes.fromhex(hex_bytes)) == EXAMPLES[name]
