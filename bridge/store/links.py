"""Locations linked on the technician's page: who they are at the platform, which POS
location they are, the secret the platform sends, and what was published for them.

Platform-neutral: a row names its platform and that platform's ids (``account`` is the
platform's grouping above locations, e.g. LOKE's organisation). Linking writes the row
before anything is sent to the platform, so a crash in between leaves a link to finish or
withdraw, never a registration the bridge forgot.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bridge.store.database import Database
from bridge.store.rows import iso, parse_iso


@dataclass(frozen=True, slots=True)
class LocationLink:
    platform: str
    location_id: str
    account: str
    name: str
    driver: str
    pos_location: str
    auth_scheme: str
    secret: str
    linked_at: datetime
    unlinked_at: datetime | None = None
    #: The tables last published, as ``(number, name)``; ``None``: not yet.
    tables: tuple[tuple[int, str], ...] | None = None
    tables_published_at: datetime | None = None
    urls_registered_at: datetime | None = None
    #: Why the last publish, registration or withdrawal failed; ``None``: it did not.
    last_error: str | None = None

    @property
    def active(self) -> bool:
        return self.unlinked_at is None


_COLUMNS = (
    "platform, location_id, account, name, driver, pos_location, auth_scheme, secret,"
    " linked_at, unlinked_at, tables, tables_published_at, urls_registered_at, last_error"
)


def _row(link: LocationLink) -> tuple[object, ...]:
    tables = None if link.tables is None else json.dumps([list(t) for t in link.tables])
    return (
        link.platform,
        link.location_id,
        link.account,
        link.name,
        link.driver,
        link.pos_location,
        link.auth_scheme,
        link.secret,
        iso(link.linked_at),
        _iso(link.unlinked_at),
        tables,
        _iso(link.tables_published_at),
        _iso(link.urls_registered_at),
        link.last_error,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)


def _link(row: sqlite3.Row) -> LocationLink:
    tables = row["tables"]
    return LocationLink(
        platform=row["platform"],
        location_id=row["location_id"],
        account=row["account"],
        name=row["name"],
        driver=row["driver"],
        pos_location=row["pos_location"],
        auth_scheme=row["auth_scheme"],
        secret=row["secret"],
        linked_at=parse_iso(row["linked_at"]),
        unlinked_at=_time(row["unlinked_at"]),
        tables=None if tables is None else tuple((n, name) for n, name in json.loads(tables)),
        tables_published_at=_time(row["tables_published_at"]),
        urls_registered_at=_time(row["urls_registered_at"]),
        last_error=row["last_error"],
    )


class LinkStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def links(self, platform: str) -> list[LocationLink]:
        """Every link the platform ever had here, unlinked ones included, oldest first."""

        def work(conn: sqlite3.Connection) -> list[LocationLink]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM location_links WHERE platform = ? ORDER BY linked_at",
                (platform,),
            )
            return [_link(row) for row in rows]

        return await self._db.read(work)

    async def save(self, link: LocationLink) -> None:
        """Write ``link`` whole (a new link, a relink, or what was published for it)."""
        placeholders = ",".join("?" * len(_row(link)))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO location_links ({_COLUMNS}) VALUES ({placeholders})",
                _row(link),
            )

        await self._db.write(work)
