"""The bridge's client for LOKE's platform API (``docs/loke-linking.md`` §2).

Documented calls: organisations and their locations, paged by ``X-Next-Page`` (followed to
the end, bounded, never built by hand). Inferred calls, their paths templates from
``[loke]``: publish/withdraw a location's tables, register/withdraw its two pay-at-table
URLs. Tokens come from a :class:`TokenSource`; a 401 asks it for a new one and retries once
(as LOKE's own addon does). Every call is idempotent (GET, PUT, DELETE), so a transient
failure (5xx, timeout, connection) is retried a bounded number of times, then raised as a
:class:`LokeApiError` with ``transient`` set. Tokens and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp

from bridge.config import LokeConfig

logger = logging.getLogger(__name__)

#: The most pages one listing follows: a platform that keeps answering ``X-Next-Page`` is
#: broken, not large.
MAX_PAGES = 100


class TokenSource(Protocol):
    """Access tokens per LOKE organisation (``tokens.LokeTokens``)."""

    async def access_token(self, organization_id: str) -> str:
        """A token believed valid for ``organization_id``."""
        ...

    async def rejected(self, organization_id: str, token: str) -> str:
        """LOKE refused ``token`` (401): a new one (refreshed), or raise."""
        ...


class LokeApiError(Exception):
    """LOKE answered an error, or did not answer. ``status`` 0: no answer (timeout,
    connection); ``transient``: worth trying again later (5xx, 429, timeout, connection)."""

    def __init__(self, status: int, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class LokeOrganization:
    id: str
    name: str
    currency: str
    timezone: str


@dataclass(frozen=True)
class LokeLocation:
    id: str
    name: str
    timezone: str


@dataclass(frozen=True)
class TableEntry:
    """A table as published to LOKE: its number and the name guests see."""

    number: int
    name: str


def _text(item: dict[str, Any], key: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if not isinstance(value, str):
        raise LokeApiError(502, "invalid_response", f"a listed item has no string {key!r}")
    return value


def _items(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
        raise LokeApiError(502, "invalid_response", "a list call did not answer a JSON list")
    return body


async def _error(response: aiohttp.ClientResponse) -> LokeApiError:
    """LOKE's ``{"message", "code", "type"}`` as a :class:`LokeApiError`."""
    status = response.status
    code, message = f"http_{status}", response.reason or ""
    try:
        body = json.loads(await response.read())
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("code"), str):
            code = body["code"]
        elif isinstance(body.get("type"), str):
            code = body["type"].rsplit("/", 1)[-1]
        if isinstance(body.get("message"), str):
            message = body["message"][:300]
    transient = status >= 500 or status == 429
    return LokeApiError(status, code, message, transient=transient)


class LokeApi:
    """LOKE's platform API over one aiohttp session.

    ``retries``: further attempts after a transient failure; ``max_pages`` bounds a listing.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: LokeConfig,
        tokens: TokenSource,
        *,
        retries: int = 1,
        retry_delay_s: float = 0.2,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self._session = session
        self._base = config.api_url.rstrip("/")
        self._origin = urlsplit(config.api_url)[:2]
        self._tables_path = config.tables_path
        self._pay_at_table_path = config.pay_at_table_path
        self._timeout = aiohttp.ClientTimeout(total=config.http_timeout_s)
        self._tokens = tokens
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._max_pages = max_pages

    # -- the calls ------------------------------------------------------------------------

    async def organizations(
        self, organization_id: str | None = None, *, token: str | None = None
    ) -> list[LokeOrganization]:
        """Every organisation a token reaches: the token source's for ``organization_id``,
        or ``token`` as it is (right after the code flow, before the bridge knows which
        organisations it reaches: a 401 is then final)."""
        items = await self._list("/organizations", organization_id, token)
        return [
            LokeOrganization(
                _text(i, "id"),
                _text(i, "name", ""),
                _text(i, "currency", ""),
                _text(i, "timezone", ""),
            )
            for i in items
        ]

    async def locations(self, organization_id: str) -> list[LokeLocation]:
        """Every location of the organisation, all pages."""
        path = f"/organizations/{quote(organization_id, safe='')}/locations"
        items = await self._list(path, organization_id, None)
        return [
            LokeLocation(_text(i, "id"), _text(i, "name", ""), _text(i, "timezone", ""))
            for i in items
        ]

    async def publish_tables(
        self, organization_id: str, location_id: str, tables: Sequence[TableEntry]
    ) -> None:
        """Replace the location's tables at LOKE with ``tables``."""
        body = {"tables": [{"number": t.number, "name": t.name} for t in tables]}
        url = self._location_url(self._tables_path, organization_id, location_id)
        await self._call("PUT", url, organization_id, None, body)

    async def withdraw_tables(self, organization_id: str, location_id: str) -> None:
        url = self._location_url(self._tables_path, organization_id, location_id)
        await self._call("DELETE", url, organization_id, None, None)

    async def register_urls(
        self,
        organization_id: str,
        location_id: str,
        fetch_bill_url: str,
        add_payment_url: str,
        scheme: str,
        secret: str,
    ) -> None:
        """Tell LOKE the location's fetch-bill and add-payment URLs (with ``{tableNumber}``)
        and the credentials it must send to them."""
        body = {
            "fetchBillUrl": fetch_bill_url,
            "addPaymentUrl": add_payment_url,
            "auth": {"scheme": scheme, "secret": secret},
        }
        url = self._location_url(self._pay_at_table_path, organization_id, location_id)
        await self._call("PUT", url, organization_id, None, body)

    async def withdraw_urls(self, organization_id: str, location_id: str) -> None:
        url = self._location_url(self._pay_at_table_path, organization_id, location_id)
        await self._call("DELETE", url, organization_id, None, None)

    # -- the plumbing ---------------------------------------------------------------------

    def _location_url(self, template: str, organization_id: str, location_id: str) -> str:
        path = template.format(
            organizationId=quote(organization_id, safe=""),
            locationId=quote(location_id, safe=""),
        )
        return self._base + path

    async def _list(
        self, path: str, organization_id: str | None, token: str | None
    ) -> list[dict[str, Any]]:
        url: str | None = self._base + path
        items: list[dict[str, Any]] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > self._max_pages:
                raise LokeApiError(502, "too_many_pages", f"{path}: more than {self._max_pages}")
            body, next_url = await self._call("GET", url, organization_id, token, None)
            items += _items(body)
            url = self._next(next_url, path)
        return items

    def _next(self, next_url: str | None, path: str) -> str | None:
        """``X-Next-Page``, if it points at LOKE's API itself (a token is sent there)."""
        if not next_url:
            return None
        if urlsplit(next_url)[:2] != self._origin:
            raise LokeApiError(502, "invalid_response", f"{path}: X-Next-Page leaves the API")
        return next_url

    async def _call(
        self,
        method: str,
        url: str,
        organization_id: str | None,
        token: str | None,
        body: dict[str, Any] | None,
    ) -> tuple[Any, str | None]:
        """One call, with the 401 retry and the transient retries; ``(JSON body or None,
        X-Next-Page)``."""
        attempt = 0
        while True:
            try:
                return await self._authorised(method, url, organization_id, token, body)
            except LokeApiError as exc:
                if not exc.transient or attempt >= self._retries:
                    raise
                attempt += 1
                logger.warning(
                    "LOKE %s %s: %s; retrying (%d/%d)",
                    method,
                    urlsplit(url).path,
                    exc,
                    attempt,
                    self._retries,
                )
                await asyncio.sleep(self._retry_delay_s * attempt)

    async def _authorised(
        self,
        method: str,
        url: str,
        organization_id: str | None,
        token: str | None,
        body: dict[str, Any] | None,
    ) -> tuple[Any, str | None]:
        if token is None:
            if organization_id is None:
                raise ValueError("an organisation or a token is needed")
            token = await self._tokens.access_token(organization_id)
        try:
            return await self._once(method, url, token, body)
        except LokeApiError as exc:
            if exc.status != 401 or organization_id is None:
                raise
        logger.info("LOKE refused the access token of %s; asking for a new one", organization_id)
        token = await self._tokens.rejected(organization_id, token)
        return await self._once(method, url, token, body)

    async def _once(
        self, method: str, url: str, token: str, body: dict[str, Any] | None
    ) -> tuple[Any, str | None]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, timeout=self._timeout
            ) as response:
                if response.status >= 400:
                    raise await _error(response)
                raw = await response.read()
                next_page = response.headers.get("X-Next-Page")
        except TimeoutError:
            raise LokeApiError(0, "timeout", "no answer in time", transient=True) from None
        except aiohttp.ClientError as exc:
            raise LokeApiError(
                0, "connection", f"LOKE cannot be reached: {type(exc).__name__}", transient=True
            ) from None
        logger.debug("LOKE %s %s: %d", method, urlsplit(url).path, response.status)
        if not raw:
            return None, next_page
        try:
            return json.loads(raw), next_page
        except ValueError:
            raise LokeApiError(502, "invalid_response", "LOKE answered no JSON") from None
