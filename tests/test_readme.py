"""README's "What is here" table is the map of the folders: every path it names exists, and
every package (and every folder of ``bridge/``) has its row."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table_paths() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## What is here", 1)[1].split("\n## ", 1)[0]
    paths = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            first = row.split("|")[1]
            names = re.findall(r"`([^`]+)`", first)
            folder = names[0].rsplit("/", 1)[0] if "/" in names[0].rstrip("/") else ""
            for name in names:  # `bridge/app.py`, `config.py`: the second is in the first's folder
                paths.add(name if "/" in name or not folder else f"{folder}/{name}")
    return paths


def test_every_path_in_the_table_exists():
    assert {p for p in _table_paths() if not (ROOT / p).exists()} == set()


def test_every_package_and_bridge_folder_has_a_row():
    named = {p.rstrip("/") for p in _table_paths()}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"}
    bridge_folders = {f"bridge/{p.parent.name}" for p in ROOT.glob("bridge/*/__init__.py")}
    missing = {
        folder
        for folder in packages | bridge_folders
        if not any(n == folder or n.startswith(folder + "/") for n in named)
    }
    assert missing == set()
