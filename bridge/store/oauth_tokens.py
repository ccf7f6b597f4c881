"""OAuth tokens per platform account, platform-neutral (for LOKE the account is the
organisation id): the newest access and refresh token, and whether the account must be
authorised again.

Why in the bridge's SQLite file: a refresh token may rotate on every refresh, so the newest
one must survive a crash between LOKE's answer and the next call; the file is mode 0600
(:mod:`bridge.store.database`). Rows are written through :meth:`Database.write` (on disk
when it returns); single-row lookups are inline (:meth:`Database.read_now`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bridge.store.database import Database

TokenState = Literal["ok", "reauthorise"]

_COLUMNS = (
    "platform, account, access_token, refresh_token, expires_at, scope, state, reason, updated_at"
)


@dataclass(frozen=True)
class OAuthTokenRow:
    platform: str
    account: str
    access_token: str
    refresh_token: str | None
    #: The access token's expiry, seconds since the epoch.
    expires_at: float
    scope: str
    state: TokenState
    #: Why ``reauthorise`` (an OAuth error code and its description; never a token).
    reason: str
    updated_at: str

    def __repr__(self) -> str:  # a row must never print its tokens
        return (
            f"OAuthTokenRow(platform={self.platform!r}, account={self.account!r}, "
            f"state={self.state!r}, expires_at={self.expires_at!r})"
        )


def _row(row: sqlite3.Row) -> OAuthTokenRow:
    return OAuthTokenRow(
        platform=row["platform"],
        account=row["account"],
        access_token=row["access_token"],
        refresh_token=row["refresh_token"],
        expires_at=float(row["expires_at"]),
        scope=row["scope"],
        state=row["state"],
        reason=row["reason"],
        updated_at=row["updated_at"],
    )


def _moment(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()


class OAuthTokens:
    """The ``oauth_tokens`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, platform: str, account: str) -> OAuthTokenRow | None:
        def work(conn: sqlite3.Connection) -> OAuthTokenRow | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM oauth_tokens WHERE platform = ? AND account = ?",
                (platform, account),
            ).fetchone()
            return _row(found) if found is not None else None

        return self.db.read_now(work)

    async def all(self, platform: str) -> list[OAuthTokenRow]:
        def work(conn: sqlite3.Connection) -> list[OAuthTokenRow]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM oauth_tokens WHERE platform = ? ORDER BY account",
                (platform,),
            ).fetchall()
            return [_row(row) for row in rows]

        return await self.db.read(work)

    async def put(
        self,
        platform: str,
        account: str,
        *,
        access_token: str,
        refresh_token: str | None,
        expires_at: float,
        scope: str,
        now: float,
    ) -> None:
        """Replace the account's tokens (state ``ok``); on disk when this returns."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO oauth_tokens ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, 'ok', '', ?)",
                (
                    platform,
                    account,
                    access_token,
                    refresh_token,
                    expires_at,
                    scope,
                    _moment(now),
                ),
            )

        await self.db.write(work)

    async def refreshed(
        self,
        platform: str,
        account: str,
        *,
        old_refresh_token: str,
        access_token: str,
        refresh_token: str,
        expires_at: float,
        scope: str,
        now: float,
    ) -> None:
        """A refresh's answer, for the account and every other account that shared the old
        refresh token (one code flow can reach several accounts; a rotated token must not
        stay behind in a sibling row, where using it would be reuse)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE oauth_tokens SET access_token = ?, refresh_token = ?, expires_at = ?, "
                "scope = ?, updated_at = ? WHERE platform = ? AND state = 'ok' "
                "AND (account = ? OR refresh_token = ?)",
                (
                    access_token,
                    refresh_token,
                    expires_at,
                    scope,
                    _moment(now),
                    platform,
                    account,
                    old_refresh_token,
                ),
            )

        await self.db.write(work)

    async def mark_reauthorise(self, platform: str, account: str, reason: str, now: float) -> None:
        """The refresh token was refused: keep the row, stop refreshing, say why."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE oauth_tokens SET state = 'reauthorise', reason = ?, updated_at = ? "
                "WHERE platform = ? AND account = ?",
                (reason, _moment(now), platform, account),
            )

        await self.db.write(work)
