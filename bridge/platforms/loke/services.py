"""The LOKE addon's parts, built once when ``[loke]`` is configured: the issuer's client, the
tokens per organisation, LOKE's platform API and the linking of locations.

Why a cleanup context of its own: it owns an HTTP client session (closed on the way out)
and must start after the store and the services (links are served from the store) and
before the scheduler, which runs its two jobs (token refresh, republishing tables).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from aiohttp import web

from bridge.config import Config, LokeConfig
from bridge.platforms.loke.addon_meta import public_prefix
from bridge.platforms.loke.api import LokeApi
from bridge.platforms.loke.linking import LokeLinking
from bridge.platforms.loke.locations import LokeLocations
from bridge.platforms.loke.oauth import LokeConnector
from bridge.platforms.loke.tokens import LokeTokens
from bridge.services.operations import PosOperations
from bridge.store.database import Database
from bridge.store.links import LinkStore
from bridge.store.oauth_tokens import OAuthTokens

#: How often the token job looks for access tokens about to expire, seconds.
TOKEN_CHECK_S = 30.0


@dataclass(frozen=True, slots=True)
class LokeServices:
    config: LokeConfig
    connector: LokeConnector
    tokens: LokeTokens
    api: LokeApi
    linking: LokeLinking


LOKE_SERVICES = web.AppKey("loke_services", LokeServices)


async def build(
    config: Config,
    db: Database,
    locations: LokeLocations,
    operations: PosOperations,
    clock: Callable[[], datetime],
    session: aiohttp.ClientSession,
    epoch_clock: Callable[[], float] = time.time,
) -> LokeServices:
    """Every part, with the links kept in the store served again."""
    assert config.loke is not None
    connector = LokeConnector(config.loke, session, epoch_clock)
    tokens = LokeTokens(OAuthTokens(db), connector, epoch_clock)
    api = LokeApi(session, config.loke, tokens)
    linking = LokeLinking(
        LinkStore(db),
        locations,
        operations,
        api,
        list(config.drivers),
        public_prefix(config.loke, config.tunnel),
        config.loke.link_auth_scheme,
        clock,
    )
    await linking.start()
    return LokeServices(config.loke, connector, tokens, api, linking)
