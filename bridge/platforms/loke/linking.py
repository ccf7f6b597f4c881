"""Linking a LOKE location to a POS location: what the technician's page asks for.

On link the bridge publishes the location's numeric tables and registers its two URLs (the
relay's public URLs for this venue) with the credentials LOKE must send; on unlink it
withdraws them; :meth:`LokeLinking.reconcile` (a periodic job, and on demand) publishes the
tables again when the POS's change and finishes what LOKE refused or could not be reached
for. The calls are inferred (``docs/loke-linking.md``).

Why the link is written before LOKE hears of it: a crash between the two leaves a link that
:meth:`reconcile` finishes, never a registration at LOKE that the bridge forgot (whose
secret it could no longer check). Unlinking likewise stops serving first, then withdraws.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote

from bridge.config import AuthConfig
from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.api import LokeApi, LokeApiError, TableEntry
from bridge.platforms.loke.locations import LinkedLocation, LokeLocations
from bridge.platforms.loke.tokens import ReauthoriseError
from bridge.services.operations import PosOperations
from bridge.store.links import LinkStore, LocationLink
from common.errors import ApiError, ConflictError, NotFoundError

logger = logging.getLogger(__name__)

#: LOKE fills this in with the table's number in each call (``docs/loke-linking.md``).
TABLE_PLACEHOLDER = "{tableNumber}"


@dataclass(frozen=True, slots=True)
class PayAtTableUrls:
    fetch_bill: str
    add_payment: str


def pay_at_table_urls(public_url: str, location_id: str) -> PayAtTableUrls:
    """The two URLs LOKE calls for a location, under the venue's public prefix."""
    base = f"{public_url.rstrip('/')}/loke/v1/locations/{quote(location_id, safe='')}"
    return PayAtTableUrls(
        f"{base}/tables/{TABLE_PLACEHOLDER}/bill", f"{base}/tables/{TABLE_PLACEHOLDER}/payments"
    )


def served(link: LocationLink) -> LinkedLocation:
    """A link as the routes serve it."""
    return LinkedLocation(
        link.location_id,
        link.name,
        link.driver,
        link.pos_location,
        AuthConfig.model_validate({"scheme": link.auth_scheme, "secrets": [link.secret]}),
        link.account,
    )


class LokeLinking:
    def __init__(
        self,
        store: LinkStore,
        locations: LokeLocations,
        operations: PosOperations,
        api: LokeApi,
        drivers: Sequence[str],
        public_url: str | None,
        auth_scheme: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._locations = locations
        self._operations = operations
        self._api = api
        self._drivers = tuple(drivers)
        self._public_url = public_url
        self._auth_scheme = auth_scheme
        self._clock = clock
        self._links: dict[str, LocationLink] = {}
        #: One change at a time: a technician's click and the periodic job take turns.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Serve the links kept in the store (a restart keeps them)."""
        for link in await self._store.links(PLATFORM):
            self._links[link.location_id] = link
            if link.active:
                current = self._locations.get(link.location_id)
                if current is not None and current.from_file:
                    logger.warning(
                        "LOKE location %s is linked on the page and configured in the file;"
                        " the file's entry is served",
                        link.location_id,
                    )
                    continue
                self._locations.serve(served(link))

    def links(self) -> list[LocationLink]:
        """Every link, unlinked ones included, oldest first."""
        return sorted(self._links.values(), key=lambda link: link.linked_at)

    def public_url(self) -> str | None:
        return self._public_url

    async def link(
        self, organization_id: str, location_id: str, name: str, driver: str, pos_location: str
    ) -> LocationLink:
        """Link a LOKE location to a POS location, publish its tables and register its URLs.

        LOKE refusing or being away is not an error here: the link stands, its
        ``last_error`` says what failed, and :meth:`reconcile` tries again.

        Raises:
            ConflictError: ``configured_in_file``, or ``no_public_url``.
            NotFoundError: ``unknown_driver``.
        """
        if driver not in self._drivers:
            raise NotFoundError("unknown_driver", f"no driver named {driver!r}", {"driver": driver})
        if self._public_url is None:
            raise ConflictError(
                "no_public_url",
                "set [loke] public_url or [tunnel]: LOKE needs the venue's public URLs",
            )
        async with self._lock:
            current = self._locations.get(location_id)
            if current is not None and current.from_file:
                raise ConflictError(
                    "configured_in_file",
                    f"location {location_id!r} is configured in the bridge's file",
                    {"locationId": location_id},
                )
            link = LocationLink(
                platform=PLATFORM,
                location_id=location_id,
                account=organization_id,
                name=name or location_id,
                driver=driver,
                pos_location=pos_location,
                auth_scheme=self._auth_scheme,
                secret=secrets.token_urlsafe(32),
                linked_at=self._clock(),
            )
            await self._save(link)
            self._locations.serve(served(link))
            logger.info("LOKE location %s linked to %s/%s", location_id, driver, pos_location)
            return await self._publish(link, force=True)

    async def unlink(self, location_id: str) -> LocationLink:
        """Stop serving a linked location and withdraw its URLs and tables at LOKE.

        Raises:
            NotFoundError: ``unknown_link``.
        """
        async with self._lock:
            link = self._links.get(location_id)
            if link is None or not link.active:
                raise NotFoundError("unknown_link", f"location {location_id!r} is not linked here")
            link = replace(link, unlinked_at=self._clock())
            await self._save(link)
            self._locations.stop(location_id)
            logger.info("LOKE location %s unlinked", location_id)
            return await self._withdraw(link)

    async def reconcile(self) -> None:
        """Publish tables that changed on the POS and finish what failed before."""
        async with self._lock:
            for link in list(self._links.values()):
                if link.active:
                    await self._publish(link, force=False)
                elif link.tables_published_at or link.urls_registered_at:
                    await self._withdraw(link)

    async def _publish(self, link: LocationLink, *, force: bool) -> LocationLink:
        try:
            tables = await self._operations.list_tables(served(link).ref)
        except ApiError as exc:  # the POS is away: publish once it is back
            return await self._failed(link, f"POS tables unavailable: {exc.message}")
        published = tuple((t.number, t.name) for t in tables)
        try:
            if force or link.tables != published or link.tables_published_at is None:
                await self._api.publish_tables(
                    link.account, link.location_id, [TableEntry(t.number, t.name) for t in tables]
                )
                link = replace(link, tables=published, tables_published_at=self._clock())
            if force or link.urls_registered_at is None:
                assert self._public_url is not None  # refused at link() otherwise
                urls = pay_at_table_urls(self._public_url, link.location_id)
                await self._api.register_urls(
                    link.account,
                    link.location_id,
                    urls.fetch_bill,
                    urls.add_payment,
                    link.auth_scheme,
                    link.secret,
                )
                link = replace(link, urls_registered_at=self._clock())
        except (LokeApiError, ReauthoriseError) as exc:  # kept, tried again later
            return await self._failed(link, _reason(exc))
        return await self._save(replace(link, last_error=None))

    async def _withdraw(self, link: LocationLink) -> LocationLink:
        try:
            if link.urls_registered_at is not None:
                await self._api.withdraw_urls(link.account, link.location_id)
                link = replace(link, urls_registered_at=None)
            if link.tables_published_at is not None:
                await self._api.withdraw_tables(link.account, link.location_id)
                link = replace(link, tables_published_at=None)
        except (LokeApiError, ReauthoriseError) as exc:
            return await self._failed(link, _reason(exc))
        return await self._save(replace(link, last_error=None))

    async def _failed(self, link: LocationLink, reason: str) -> LocationLink:
        logger.warning("LOKE location %s: %s", link.location_id, reason)
        return await self._save(replace(link, last_error=reason))

    async def _save(self, link: LocationLink) -> LocationLink:
        await self._store.save(link)
        self._links[link.location_id] = link
        return link


def _reason(exc: LokeApiError | ReauthoriseError) -> str:
    """What a failed call to LOKE says, without secrets (these errors hold none)."""
    return str(exc) or type(exc).__name__
