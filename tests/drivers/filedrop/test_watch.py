"""FolderWatch: once ``start()`` returns, no change in the folder is missed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.filedrop.watch import FolderWatch


@pytest.mark.parametrize("polling", [False, True])
async def test_a_file_created_right_after_start_is_reported(tmp_path: Path, polling: bool) -> None:
    watch = FolderWatch(tmp_path, quiet_ms=5000, polling=polling, poll_interval_ms=20)
    await watch.start()
    try:
        (tmp_path / "resp-bridge-0badcafe-1.json").write_text("{}")
        changed = await asyncio.wait_for(watch.changed(), 4)  # before any quiet-spell rescan
        assert str(tmp_path / "resp-bridge-0badcafe-1.json") in changed
    finally:
        await watch.close()


async def test_a_quiet_spell_is_reported_as_an_empty_batch(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path, quiet_ms=50)
    await watch.start()
    try:
        assert await asyncio.wait_for(watch.changed(), 4) == set()
    finally:
        await watch.close()


async def test_a_missing_folder_cannot_be_watched(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path / "absent", quiet_ms=1000)
    with pytest.raises(OSError):
        await watch.start()
        await watch.changed()
    await watch.close()
