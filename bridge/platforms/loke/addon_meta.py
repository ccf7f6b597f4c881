"""LOKE's addon framework: this bridge's metadata (``/.loke/addon-meta``) and the status of
an organisation's configuration here (``/.loke/status/{organizationId}``), as JSON. Pure.

LOKE documents that an addon exposes its metadata at the well-known ``/.loke/addon-meta``
with ``name``, ``clientId``, ``description``, ``imageUrl`` (square), ``configureUrl`` ("URL
template to navigate to when user presses configure"), ``statusUrl`` ("URL template to fetch
status information on the current status of an organisation's configuration") and
``metaUrl``. It does not document the template's placeholder nor the status answer: both are
inferred (``docs/loke-linking.md``, "Addon metadata"). Every URL starts with the venue's
public prefix at the relay (``[loke] public_url``, or derived from ``[tunnel]``), since LOKE
reaches the bridge only through the relay.

The status answer is built by :func:`addon_status`, which takes the connection state and the
linked locations as arguments: today the locations are the config file's and the connection
is ``unknown``; the OAuth client fills in ``ok`` / ``reauthorise`` / ``none`` and the links
made on the linking page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from bridge.config import LokeConfig, TunnelConfig
from bridge.contracts.fields import Reply

ADDON_NAME = "POS Bridge"
ADDON_DESCRIPTION = (
    "Pay at table from the venue's own point-of-sale: LOKE fetches each table's open bill "
    "and posts payments to it through the venue's POS Bridge."
)
#: Where the placeholders go (inferred: LOKE calls the URLs "templates").
ORGANIZATION_PLACEHOLDER = "{organizationId}"
META_PATH = "/.loke/addon-meta"
ICON_PATH = "/.loke/icon.svg"
CONFIGURE_PATH = "/.loke/configure"
STATUS_PATH = "/.loke/status"

#: The organisation's tokens on this bridge: ``unknown`` until the OAuth client reports it.
Connection = Literal["unknown", "ok", "reauthorise", "none"]
#: Who made a link: the config file's ``[locations.*]``, or the linking page.
LinkedBy = Literal["config", "page"]


class AddonMeta(Reply):
    """``GET /.loke/addon-meta``."""

    name: str
    client_id: str
    description: str
    image_url: str
    configure_url: str
    status_url: str
    meta_url: str


class LinkedLocation(Reply):
    """A LOKE location this bridge serves: LOKE's id only (its name and the POS behind it
    are nobody's business on a public URL)."""

    location_id: str
    linked_by: LinkedBy


class AddonStatus(Reply):
    """``GET /.loke/status/{organizationId}``."""

    organization_id: str
    #: At least one location is linked and the connection is not known to be broken.
    configured: bool
    connection: Connection
    locations: list[LinkedLocation]


def public_prefix(loke: LokeConfig, tunnel: TunnelConfig | None) -> str | None:
    """The venue's public prefix at the relay: ``[loke] public_url``, or from the first
    relay of ``[tunnel]`` (``wss://relay.example.com/tunnel`` as venue ``cafe`` →
    ``https://relay.example.com/v/cafe``); ``None`` when neither is set."""
    if loke.public_url:
        return loke.public_url.rstrip("/")
    if tunnel is None:
        return None
    parts = urlsplit(tunnel.relay_urls[0])
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, f"/v/{quote(tunnel.venue, safe='')}", "", ""))


def addon_meta(loke: LokeConfig, prefix: str) -> AddonMeta:
    """The metadata, every URL under ``prefix``."""
    return AddonMeta(
        name=ADDON_NAME,
        client_id=loke.client_id,
        description=ADDON_DESCRIPTION,
        image_url=prefix + ICON_PATH,
        configure_url=f"{prefix}{CONFIGURE_PATH}?organizationId={ORGANIZATION_PLACEHOLDER}",
        status_url=f"{prefix}{STATUS_PATH}/{ORGANIZATION_PLACEHOLDER}",
        meta_url=prefix + META_PATH,
    )


def addon_status(
    organization_id: str, connection: Connection, links: Iterable[LinkedLocation]
) -> AddonStatus:
    """The organisation's configuration here, from what the caller knows of it."""
    locations = list(links)
    configured = bool(locations) and connection in ("ok", "unknown")
    return AddonStatus(
        organization_id=organization_id,
        configured=configured,
        connection=connection,
        locations=locations,
    )
