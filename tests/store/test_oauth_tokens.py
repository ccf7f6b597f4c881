"""The platform-neutral OAuth token table on a real file, and the file's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bridge.store.database import Database
from bridge.store.oauth_tokens import OAuthTokens


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_database_files_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "bridge.sqlite3"
        db = Database(path)
        await db.open()
        store = OAuthTokens(db)
        await store.put(
            "loke", "org", access_token="a", refresh_token="r", expires_at=1.0, scope="", now=0
        )
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(p.exists() for p in files)
        assert [mode(p) for p in files] == [0o600] * 3
        await db.close()
        os.chmod(path, 0o644)  # a file from before: narrowed on the next open
        db = Database(path)
        await db.open()
        assert mode(path) == 0o600
        await db.close()
    finally:
        os.umask(old)


async def test_rows_put_refresh_and_reauthorise(tmp_path: Path) -> None:
    db = Database(tmp_path / "bridge.sqlite3")
    await db.open()
    store = OAuthTokens(db)
    for org in ("a", "b"):
        await store.put(
            "loke", org, access_token="A1", refresh_token="R1", expires_at=10, scope="s", now=0
        )
    await store.put(
        "loke", "c", access_token="C1", refresh_token="RC", expires_at=10, scope="s", now=0
    )
    await store.refreshed(
        "loke",
        "a",
        old_refresh_token="R1",
        access_token="A2",
        refresh_token="R2",
        expires_at=20,
        scope="s",
        now=1,
    )
    rows = {row.account: row for row in await store.all("loke")}
    assert (rows["a"].access_token, rows["a"].refresh_token) == ("A2", "R2")
    assert (rows["b"].access_token, rows["b"].refresh_token) == ("A2", "R2")  # shared grant
    assert (rows["c"].access_token, rows["c"].refresh_token) == ("C1", "RC")
    await store.mark_reauthorise("loke", "c", "invalid_grant: revoked", now=2)
    row = store.get("loke", "c")
    assert row is not None and row.state == "reauthorise" and row.reason.startswith("invalid")
    assert "RC" not in repr(row) and "C1" not in repr(row)
    assert store.get("loke", "nobody") is None and await store.all("other") == []
    await db.close()
