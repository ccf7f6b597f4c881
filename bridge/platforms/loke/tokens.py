"""LOKE's tokens per organisation: the access token to call LOKE with, refreshed before it
expires, after a 401, and by a periodic job; ``reauthorise`` once LOKE refuses the refresh.

Why one lock per organisation: with rotating refresh tokens, two refreshes racing would
present the same refresh token twice, and an issuer with reuse detection revokes the whole
grant for that. Under the lock the row is read again, so the second caller finds the first
one's new token and makes no call.

Why the new refresh token is on disk before the new access token is handed out: the old
one stopped working the moment LOKE answered; a crash after using the access token but
before writing would strand the organisation.

Why ``reauthorise`` is sticky: a revoked, expired or reused refresh token never works again,
so asking again only hammers LOKE; the technician connects again (a new code flow calls
:meth:`LokeTokens.store_new`). A transient failure (timeout, 5xx) changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Literal

from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.oauth import (
    LokeAuthError,
    LokeConnector,
    LokeUnavailableError,
    TokenSet,
)
from bridge.store.oauth_tokens import OAuthTokenRow, OAuthTokens

logger = logging.getLogger(__name__)

LinkState = Literal["ok", "reauthorise", "none"]


class ReauthoriseError(Exception):
    """No usable token for the organisation: connect it again (``reason`` says why)."""

    def __init__(self, organization: str, reason: str) -> None:
        super().__init__(f"LOKE organisation {organization}: reauthorise ({reason})")
        self.organization = organization
        self.reason = reason


class LokeTokens:
    """Tokens per LOKE organisation, kept in :class:`OAuthTokens`."""

    def __init__(
        self,
        store: OAuthTokens,
        connector: LokeConnector,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float | None = None,
    ) -> None:
        self.store = store
        self.connector = connector
        self.clock = clock
        self.margin_s = (
            connector.config.refresh_margin_s if refresh_margin_s is None else refresh_margin_s
        )
        self._locks: dict[str, asyncio.Lock] = {}

    def state(self, organization: str) -> LinkState:
        row = self.store.get(PLATFORM, organization)
        return "none" if row is None else row.state

    def reason(self, organization: str) -> str:
        """Why ``reauthorise`` (empty otherwise)."""
        row = self.store.get(PLATFORM, organization)
        return row.reason if row is not None else ""

    async def store_new(self, organizations: Iterable[str], tokens: TokenSet) -> None:
        """After the code flow: these organisations use these tokens (state ``ok``)."""
        now = self.clock()
        for organization in organizations:
            async with self._lock(organization):
                await self.store.put(
                    PLATFORM,
                    organization,
                    access_token=tokens.access_token,
                    refresh_token=tokens.refresh_token,
                    expires_at=tokens.expires_at,
                    scope=tokens.scope,
                    now=now,
                )
            logger.info("LOKE organisation %s connected", organization)

    async def access_token(self, organization: str) -> str:
        """A token to call LOKE with; refreshed first if it expires within the margin."""
        row = self._usable(organization)
        if not self._due(row):
            return row.access_token
        return await self._refresh(organization, seen=row.access_token, only_if_due=True)

    async def rejected(self, organization: str, token: str) -> str:
        """LOKE answered 401 to ``token``: a fresh one to retry with, once. If another
        refresh replaced ``token`` meanwhile, that one's token, without a call."""
        self._usable(organization)
        return await self._refresh(organization, seen=token, only_if_due=False)

    async def refresh(self, organization: str) -> str:
        """Refresh now (on demand); callers racing share one refresh."""
        row = self._usable(organization)
        return await self._refresh(organization, seen=row.access_token, only_if_due=False)

    async def refresh_due(self) -> dict[str, str]:
        """The periodic job: refresh every organisation whose token is near expiry. Each
        organisation's outcome (``refreshed``, ``reauthorise``, ``unavailable``); one
        failing does not stop the others."""
        outcomes: dict[str, str] = {}
        for row in await self.store.all(PLATFORM):
            if row.state != "ok" or not self._due(row):
                continue
            try:
                await self._refresh(row.account, seen=row.access_token, only_if_due=True)
                outcomes[row.account] = "refreshed"
            except ReauthoriseError:
                outcomes[row.account] = "reauthorise"
            except LokeUnavailableError as error:  # transient: the next run tries again
                logger.warning(
                    "LOKE organisation %s: refresh failed (%s)",
                    row.account,
                    type(error).__name__,
                )
                outcomes[row.account] = "unavailable"
        return outcomes

    def _lock(self, organization: str) -> asyncio.Lock:
        return self._locks.setdefault(organization, asyncio.Lock())

    def _usable(self, organization: str) -> OAuthTokenRow:
        row = self.store.get(PLATFORM, organization)
        if row is None:
            raise ReauthoriseError(organization, "not connected")
        if row.state == "reauthorise":
            raise ReauthoriseError(organization, row.reason)
        return row

    def _due(self, row: OAuthTokenRow) -> bool:
        return row.expires_at - self.margin_s <= self.clock()

    async def _refresh(self, organization: str, *, seen: str, only_if_due: bool) -> str:
        async with self._lock(organization):
            row = self._usable(organization)  # again: the last holder may have refreshed
            if row.access_token != seen or (only_if_due and not self._due(row)):
                return row.access_token
            if not row.refresh_token:
                return await self._reauthorise(row, "no refresh token (scope offline?)")
            try:
                tokens = await self.connector.refresh(row.refresh_token)
            except LokeAuthError as error:  # revoked, expired, reused: never works again
                return await self._reauthorise(row, f"{error.code}: {error.message}")
            await self.store.refreshed(
                PLATFORM,
                organization,
                old_refresh_token=row.refresh_token,
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token or row.refresh_token,
                expires_at=tokens.expires_at,
                scope=tokens.scope or row.scope,
                now=self.clock(),
            )
            logger.info(
                "LOKE organisation %s: access token refreshed (refresh token %s)",
                organization,
                "rotated" if tokens.refresh_token else "kept",
            )
            return tokens.access_token

    async def _reauthorise(self, row: OAuthTokenRow, reason: str) -> str:
        await self.store.mark_reauthorise(PLATFORM, row.account, reason, self.clock())
        logger.warning("LOKE organisation %s: reauthorise (%s)", row.account, reason)
        raise ReauthoriseError(row.account, reason)
