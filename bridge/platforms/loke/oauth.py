"""The bridge as LOKE's OAuth 2 / OIDC client: discovery, the authorization-code flow with
PKCE (S256) and ``state``, and the token endpoint's answers as :class:`TokenSet`.

Why authlib for the pieces and aiohttp for the wire: authlib's helpers make the verifier,
the challenge, the authorization URL and the token parsing standard; its HTTP clients are
httpx/requests, which the bridge does not use, so the two token calls are aiohttp here.

What LOKE documents and what is inferred: ``docs/loke-linking.md`` §1. A token never goes
into a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import OAuth2Token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, ValidationError

from bridge.config import LokeConfig

logger = logging.getLogger(__name__)

#: How long a started code flow waits for its callback (RFC 6749 recommends codes live
#: 10 minutes; the technician's consent takes less).
PENDING_TTL_S = 600.0
#: An answer without ``expires_in``: assume an hour (the refresh after a 401 covers less).
DEFAULT_EXPIRES_IN_S = 3600
#: Started flows kept at most (a page reloaded many times must not grow memory).
MAX_PENDING = 64


class LokeAuthError(Exception):
    """LOKE refused (an OAuth error code), or the callback is not one this bridge started.

    ``code``: ``state_mismatch``, ``state_expired``, an RFC 6749 code from LOKE
    (``access_denied``, ``invalid_grant``, ``invalid_client``…) or ``invalid_response``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LokeUnavailableError(Exception):
    """LOKE's issuer did not answer usefully (timeout, refused connection, 5xx): try again
    later; nothing about the tokens changed."""


class Discovery(BaseModel):
    """The parts of ``/.well-known/openid-configuration`` the bridge uses."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str = ""
    revocation_endpoint: str = ""


@dataclass(frozen=True, repr=False)
class TokenSet:
    """One token endpoint answer; ``expires_at`` is seconds since the epoch."""

    access_token: str
    refresh_token: str | None
    expires_at: float
    scope: str
    id_token: str | None = None

    def __repr__(self) -> str:  # never the tokens themselves
        return (
            f"TokenSet(expires_at={self.expires_at!r}, scope={self.scope!r}, "
            f"refresh_token={'yes' if self.refresh_token else 'no'})"
        )


@dataclass(frozen=True)
class _Pending:
    verifier: str
    redirect_uri: str
    created: float


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class LokeConnector:
    """Talks to LOKE's issuer for one addon client (``[loke]``)."""

    def __init__(
        self,
        config: LokeConfig,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.session = session
        self.clock = clock
        self._discovery: Discovery | None = None
        self._pending: dict[str, _Pending] = {}

    async def discover(self) -> Discovery:
        """The issuer's configuration, fetched once and then kept."""
        if self._discovery is not None:
            return self._discovery
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, body = await self._call("GET", url)
        if status != 200:
            raise LokeUnavailableError(f"discovery answered HTTP {status}")
        try:
            found = Discovery.model_validate(body)
        except ValidationError as error:
            raise LokeAuthError(
                "invalid_response", f"discovery: {error.error_count()} errors"
            ) from None
        if not _same_issuer(found.issuer, self.config.issuer):
            raise LokeAuthError("issuer_mismatch", f"discovery names issuer {found.issuer!r}")
        self._discovery = found
        return found

    async def authorization_url(self, redirect_uri: str, organization: str | None = None) -> str:
        """Where to send the technician's browser: a fresh PKCE verifier and ``state``, kept
        here until the callback (single use, :data:`PENDING_TTL_S`). ``organization``
        preselects one on LOKE's consent page (``login_hint=org=…``, as ``LOKE/auth-kit``)."""
        discovery = await self.discover()
        now = self.clock()
        self._prune(now)
        verifier = generate_token(64)
        state = generate_token(32)
        self._pending[state] = _Pending(verifier, redirect_uri, now)
        uri: str = prepare_grant_uri(
            discovery.authorization_endpoint,
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=list(self.config.scopes),
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            prompt="consent",
            login_hint=f"org={organization}" if organization else None,
        )
        return uri

    async def complete(self, query: Mapping[str, str]) -> TokenSet:
        """The callback's query (``code``, ``state`` or ``error``) → the tokens."""
        now = self.clock()
        pending = self._pending.pop(query.get("state", ""), None)
        if pending is None:
            raise LokeAuthError("state_mismatch", "the callback's state is not one we started")
        if now - pending.created > PENDING_TTL_S:
            raise LokeAuthError("state_expired", "the authorization took too long; start again")
        if "error" in query:
            raise LokeAuthError(query["error"], query.get("error_description", ""))
        code = query.get("code")
        if not code:
            raise LokeAuthError("invalid_request", "the callback carries no code")
        tokens = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_uri,
                "code_verifier": pending.verifier,
            }
        )
        logger.info("LOKE authorization code exchanged (scope %r)", tokens.scope)
        return tokens

    async def refresh(self, refresh_token: str) -> TokenSet:
        """A refresh grant. LOKE may or may not rotate: a missing ``refresh_token`` in the
        answer is ``None`` here (the caller keeps the old one)."""
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def _prune(self, now: float) -> None:
        for state, pending in list(self._pending.items()):
            if now - pending.created > PENDING_TTL_S:
                del self._pending[state]
        while len(self._pending) >= MAX_PENDING:  # oldest first (dicts keep order)
            del self._pending[next(iter(self._pending))]

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        discovery = await self.discover()
        # RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
        client_id = quote(self.config.client_id, safe="")
        pair = f"{client_id}:{quote(self.config.client_secret, safe='')}"
        headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        now = self.clock()
        status, body = await self._call("POST", discovery.token_endpoint, form, headers)
        if status >= 500 or status == 429:
            raise LokeUnavailableError(f"token endpoint answered HTTP {status}")
        if status != 200:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, str):
                raise LokeAuthError("invalid_response", f"token endpoint answered HTTP {status}")
            description = body.get("error_description")
            raise LokeAuthError(error, description if isinstance(description, str) else "")
        return _token_set(body, now)

    async def _call(
        self,
        method: str,
        url: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request; its status and JSON body (``None`` if not JSON). Transport failures
        are :class:`LokeUnavailableError`."""
        timeout = aiohttp.ClientTimeout(total=self.config.http_timeout_s)
        try:
            async with self.session.request(
                method,
                url,
                data=form,
                headers={"Accept": "application/json", **(headers or {})},
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as error:
            raise LokeUnavailableError(
                f"{method} {url}: {type(error).__name__}"
            ) from None  # the request's form (tokens) stays out of the chain
        try:
            return status, json.loads(text)
        except ValueError:
            return status, None


def _token_set(body: Any, now: float) -> TokenSet:
    """A token response (RFC 6749 §5.1) through authlib's :class:`OAuth2Token`, with
    ``expires_at`` from ``expires_in`` and our own clock."""
    if not isinstance(body, dict):
        raise LokeAuthError("invalid_response", "the token answer is not a JSON object")
    expires_in = body.get("expires_in")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        expires_in = DEFAULT_EXPIRES_IN_S  # RFC 6749 §5.1: RECOMMENDED, not required
    params = dict(body)
    params["expires_at"] = int(now + expires_in)
    token = OAuth2Token(params)
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise LokeAuthError("invalid_response", "the token answer has no access_token")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise LokeAuthError("invalid_response", "the token answer is not a bearer token")
    refresh_token = token.get("refresh_token")
    id_token = token.get("id_token")
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=float(token["expires_at"]),
        scope=str(token.get("scope", "")),
        id_token=id_token if isinstance(id_token, str) else None,
    )
