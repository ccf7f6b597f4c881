"""Who may call: platforms with their per-location secret, technicians with the admin token.

LOKE does not publish how it authenticates calls to an addon's URLs, so the bridge offers two
schemes per location (``docs/loke-pay-at-table.md``, "Authentication"):

- ``bearer``: ``Authorization: Bearer <secret>``;
- ``hmac-sha256``: ``X-Event-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, the way
  LOKE signs its webhooks.

Comparisons are constant-time; several secrets may be valid at once, for rotation. Secrets
are never logged, and a refusal never says which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from aiohttp import web

from bridge.config import AuthConfig
from common.errors import UnauthorizedError


def _refuse(realm: str) -> UnauthorizedError:
    return UnauthorizedError(
        "unauthorized",
        "missing or wrong credentials",
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The bearer token of ``headers`` (case-insensitive, or names in lower case: either
    way a lower-case name finds it)."""
    header = headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(candidate: str, secrets: tuple[str, ...]) -> bool:
    found = False
    for secret in secrets:  # no early exit: timing does not tell which secret matched
        found |= hmac.compare_digest(candidate.encode(), secret.encode())
    return found


def check_platform_auth(headers: Mapping[str, str], auth: AuthConfig | None, body: bytes) -> None:
    """Raise 401 unless ``headers`` carry this location's credentials.

    ``headers``: aiohttp's case-insensitive mapping, or one whose names are in lower case.

    ``auth`` is ``None`` for a location that is not linked: refused like a bad secret, so
    callers cannot probe which locations exist.
    """
    if auth is None:
        raise _refuse("loke")
    if auth.scheme == "bearer":
        token = bearer_token(headers)
        if token is None or not _matches(token, auth.secrets):
            raise _refuse("loke")
        return
    name = auth.signature_header
    signature = headers.get(name.lower()) or ""
    if not signature.startswith("sha256="):
        raise _refuse("loke")
    given = signature[len("sha256=") :].strip().lower()
    expected = [hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in auth.secrets]
    if not _matches(given, tuple(expected)):
        raise _refuse("loke")


def check_admin(request: web.Request, admin_token: str) -> None:
    token = bearer_token(request.headers)
    if token is None or not _matches(token, (admin_token,)):
        raise _refuse("pos-bridge admin")
