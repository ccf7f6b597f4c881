"""The sandbox's OIDC issuer: discovery, the authorize endpoint and its consent page, the
token endpoint, JWKS, revocation, and the ``/_sandbox/`` controls over token lifetimes.

LOKE documents the endpoints (``{issuer}/authorize``, ``/token``, ``/jwks``), the two flows
and what each token reaches; lifetimes, rotation, reuse detection and the client
authentication methods are the sandbox's own choices (``docs/loke-sandbox.md``). The grant
rules are authlib's (:mod:`oauth_server`); this module is the HTTP around them.

authlib logs every token it issues at DEBUG; :func:`add_issuer` keeps its loggers at INFO so
that a token never reaches a log, here as in the bridge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import jinja2
from aiohttp import web
from authlib.oauth2 import OAuth2Error  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import InvalidRequestError  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.platforms.loke.sandbox.oauth_server import (
    CLIENT_AUTH_METHODS,
    GRANT_TYPES,
    SCOPES,
    AiohttpRequest,
    SandboxServer,
    oauth2_request,
)
from bridge.platforms.loke.sandbox.state import AuthorizationCode, SandboxState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
)
#: The authorize request's parameters the consent form carries back to ``POST /authorize``.
_CARRIED = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "login_hint",
)


class Settings(BaseModel):
    """``PUT /_sandbox/settings``: only the keys given change."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    access_token_ttl_s: Annotated[float | None, Field(alias="accessTokenTtlS", gt=0)] = None
    refresh_token_ttl_s: Annotated[float | None, Field(alias="refreshTokenTtlS", gt=0)] = None
    rotate_refresh_tokens: Annotated[bool | None, Field(alias="rotateRefreshTokens")] = None


def oauth_error(status: int, error: str, description: str) -> web.Response:
    """An RFC 6749 §5.2 error body."""
    return web.json_response({"error": error, "error_description": description}, status=status)


def issuer_url(request: web.Request) -> str:
    """The issuer is the sandbox's own origin, with the trailing ``/`` LOKE's has."""
    return f"{request.url.origin()}/"


class Issuer:
    """The issuer's handlers over one :class:`SandboxState` and clock."""

    def __init__(self, state: SandboxState, clock: Callable[[], float]) -> None:
        self.state = state
        self.clock = clock
        self.key = RSAKey.generate_key(
            2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True
        )
        self.server = SandboxServer(state, clock, self.id_token)

    def id_token(self, request: AiohttpRequest, code: AuthorizationCode) -> str:
        """An RS256 id_token for the sandbox's one user (there is no sign-in)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": request.issuer,
            "sub": "sandbox-admin",
            "aud": code.client_id,
            "iat": now,
            "exp": now + int(self.state.access_token_ttl_s),
            "email": "admin@sandbox.invalid",
        }
        if code.nonce:
            claims["nonce"] = code.nonce
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def logged(self, handler: Handler, faults: bool = True) -> Handler:
        """Record the call in ``state.calls``; apply an injected fault (``state.faults``)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.state.calls.append(f"{request.method} {request.path}")
            fault = self.state.take_fault(request.path) if faults else None
            if fault is not None:
                if fault.delay_s:
                    await asyncio.sleep(fault.delay_s)
                if fault.status:
                    return oauth_error(
                        fault.status, "temporarily_unavailable", "injected by the sandbox"
                    )
            try:
                return await handler(request)
            except OAuth2Error as error:  # e.g. authlib refusing a plain-http, non-loopback URL
                response: web.Response = self.server.handle_response(*error())
                return response

        return wrapped

    async def discovery(self, request: web.Request) -> web.Response:
        base = issuer_url(request)
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}authorize",
                "token_endpoint": f"{base}token",
                "jwks_uri": f"{base}jwks",
                "revocation_endpoint": f"{base}revoke",
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": list(GRANT_TYPES),
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
                "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.as_dict(private=False)]})

    async def authorize_page(self, request: web.Request) -> web.Response:
        req = await oauth2_request(request, issuer_url(request))
        try:
            self.server.get_consent_grant(req)
        except OAuth2Error as error:
            response: web.Response = self.server.handle_error_response(req, error)
            return response
        data = req.payload.data
        client = self.state.clients[data["client_id"]]
        organizations = [
            self.state.organizations[org_id]
            for org_id in sorted(client.installed)
            if org_id in self.state.organizations
        ]
        hint = data.get("login_hint", "")
        wanted = hint[len("org=") :] if hint.startswith("org=") else ""
        ids = [org.id for org in organizations]
        selected = wanted if wanted in ids else (ids[0] if ids else "")
        html = _TEMPLATES.get_template("consent.html").render(
            client_id=client.client_id,
            scope=req.scope,
            action="/authorize",
            hidden=[(name, data[name]) for name in _CARRIED if data.get(name)],
            organizations=organizations,
            selected=selected,
        )
        return web.Response(text=html, content_type="text/html")

    async def authorize_decision(self, request: web.Request) -> web.Response:
        req = await oauth2_request(request, issuer_url(request))
        try:
            grant = self.server.get_consent_grant(req)  # the carried parameters, again
        except OAuth2Error as error:
            response: web.Response = self.server.handle_error_response(req, error)
            return response
        data = req.payload.data
        decision = data.get("decision")
        if decision not in ("allow", "deny"):
            return oauth_error(400, "invalid_request", "decision must be allow or deny")
        organization = None
        if decision == "allow":
            organization = data.get("organization", "")
            client = self.state.clients[data["client_id"]]
            if organization not in client.installed:
                refused = InvalidRequestError("organization: not one that installed this client")
                return oauth_error(400, refused.error, refused.description)
        answer: web.Response = self.server.create_authorization_response(
            req, grant_user=organization, grant=grant
        )
        return answer

    async def token(self, request: web.Request) -> web.Response:
        req = await oauth2_request(request, issuer_url(request))
        response: web.Response = self.server.create_token_response(req)
        return response

    async def revoke(self, request: web.Request) -> web.Response:
        req = await oauth2_request(request, issuer_url(request))
        response: web.Response = self.server.create_endpoint_response("revocation", req)
        return response

    async def expire_access_tokens(self, request: web.Request) -> web.Response:
        now = self.clock()
        for grant in self.state.access_tokens.values():
            grant.expires_at = min(grant.expires_at, now)
        return web.json_response({"expired": len(self.state.access_tokens)})

    async def revoke_refresh_tokens(self, request: web.Request) -> web.Response:
        for record in self.state.refresh_tokens.values():
            record.revoked = True
        return web.json_response({"revoked": len(self.state.refresh_tokens)})

    async def settings(self, request: web.Request) -> web.Response:
        try:
            body = Settings.model_validate_json(await request.read())
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in error.errors()
            )
            return oauth_error(400, "invalid_request", problems)
        if body.access_token_ttl_s is not None:
            self.state.access_token_ttl_s = body.access_token_ttl_s
        if body.refresh_token_ttl_s is not None:
            self.state.refresh_token_ttl_s = body.refresh_token_ttl_s
        if body.rotate_refresh_tokens is not None:
            self.state.rotate_refresh_tokens = body.rotate_refresh_tokens
        return web.json_response(
            {
                "accessTokenTtlS": self.state.access_token_ttl_s,
                "refreshTokenTtlS": self.state.refresh_token_ttl_s,
                "rotateRefreshTokens": self.state.rotate_refresh_tokens,
            }
        )


def add_issuer(
    app: web.Application, state: SandboxState, clock: Callable[[], float] = time.time
) -> None:
    """Add the issuer's routes and its ``/_sandbox/`` controls to ``app``."""
    for name in ("authlib.oauth2", "authlib.oidc"):
        logging.getLogger(name).setLevel(logging.INFO)  # authlib logs tokens at DEBUG
    issuer = Issuer(state, clock)
    log = issuer.logged
    app.router.add_get("/.well-known/openid-configuration", log(issuer.discovery))
    app.router.add_get("/authorize", log(issuer.authorize_page))
    app.router.add_post("/authorize", log(issuer.authorize_decision))
    app.router.add_post("/token", log(issuer.token))
    app.router.add_get("/jwks", log(issuer.jwks))
    app.router.add_post("/revoke", log(issuer.revoke))
    app.router.add_post("/_sandbox/tokens/expire", log(issuer.expire_access_tokens, False))
    app.router.add_post("/_sandbox/tokens/revoke", log(issuer.revoke_refresh_tokens, False))
    app.router.add_put("/_sandbox/settings", log(issuer.settings, False))


__all__ = ["add_issuer"]
