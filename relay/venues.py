"""Venue tunnel tokens: one per venue, stored as SHA-256 hashes in a small TOML file.

``pos-bridge relay add-venue NAME`` draws a token (32 random bytes, URL-safe), prints it once
and stores only its hash. A plain SHA-256 is enough because the token is random with 256 bits
of entropy: nothing to guess, so a slow password hash would add nothing. Checks compare hashes
with :func:`hmac.compare_digest` (constant time), and the file is re-read when it changes, so
a venue added while the relay runs can connect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from common.settings import ConfigError

VENUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_venue_name(name: str) -> str:
    if not VENUE_NAME.fullmatch(name):
        raise ConfigError(
            "venue", f"{name!r}: use 1-64 of A-Z a-z 0-9 . _ -, not starting with . _ -"
        )
    return name


class VenueTokens:
    """The venues file, re-read whenever its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hashes: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None

    def _load(self) -> dict[str, str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._hashes, self._stamp = {}, None
            return self._hashes
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                data = tomllib.loads(self.path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(str(self.path), f"not valid TOML: {exc}") from exc
            venues = data.get("venues", {})
            self._hashes = {
                name: str(entry.get("token_sha256", ""))
                for name, entry in venues.items()
                if isinstance(entry, dict)
            }
            self._stamp = stamp
        return self._hashes

    def names(self) -> list[str]:
        return sorted(self._load())

    def known(self, venue: str) -> bool:
        return venue in self._load()

    def check(self, venue: str, token: str) -> bool:
        """Whether ``token`` is ``venue``'s. Unknown venues cost the same hash and compare."""
        stored = self._load().get(venue, "")
        presented = token_hash(token)
        return hmac.compare_digest(stored or "0" * 64, presented) and bool(stored)


def add_venue(path: Path, name: str) -> str:
    """Add ``name`` with a fresh token and return the token (the file keeps only its hash).

    Raises:
        ConfigError: a bad name, or the venue exists already.
    """
    check_venue_name(name)
    if name in VenueTokens(path).names():
        raise ConfigError("venue", f"{name!r} exists already in {path}")
    token = "pbv_" + secrets.token_urlsafe(32)  # a prefix secret scanners can match
    added = datetime.now(UTC).isoformat(timespec="seconds")
    entry = f'\n[venues."{name}"]\ntoken_sha256 = "{token_hash(token)}"\nadded_at = "{added}"\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    old = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else ("# Venue tunnel tokens, SHA-256 hashed; written by `pos-bridge relay add-venue`.\n")
    )
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(old + entry)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return token
