"""The technician's login session: a signed cookie value with an expiry, and its CSRF token.

No session store and no new dependency: the cookie holds ``<id>.<expires>.<mac>``, the MAC an
HMAC-SHA256 over ``<id>.<expires>`` under a key drawn at random when the pages are set up
(once per process). Why random per process rather than derived from the admin token:

- nothing to keep secret on disk, and the key never leaves memory;
- a restart (which is also how a new admin token takes effect: the config is read at start)
  ends every session, so a rotated token logs everyone out without a second mechanism;
- a cookie's strength does not depend on the admin token's, and a leaked cookie tells nothing
  about the token.

The cost is that a restart logs the technician out, which is acceptable for a page used at
install and support time. Logging out revokes the session's id in memory until it would have
expired, so a copied cookie stops working too.

CSRF is session-bound (not double-submit): a form's token is an HMAC of the session's id
under the same key, so it needs no cookie of its own and a token from another session (or an
attacker's own login) never passes. Pure: ``now`` (seconds since the epoch) is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

#: How long a login lasts: a technician's visit, not a shift's worth of idle browser.
SESSION_TTL_S = 8 * 3600
COOKIE_NAME = "pos_bridge_admin"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in technician: the session's id and when it ends."""

    id: str
    expires: int


@dataclass(slots=True)
class Sessions:
    """Issues and checks session cookies and CSRF tokens under one key."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    ttl_s: int = SESSION_TTL_S
    _revoked: dict[str, int] = field(default_factory=dict)

    def _mac(self, purpose: str, value: str) -> str:
        message = f"{purpose}:{value}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def issue(self, now: float) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), int(now) + self.ttl_s)
        payload = f"{session.id}.{session.expires}"
        return session, f"{payload}.{self._mac('session', payload)}"

    def verify(self, cookie: str | None, now: float) -> Session | None:
        """The session ``cookie`` holds, or ``None`` if it is missing, forged, expired or
        revoked."""
        if not cookie or len(cookie) > 256:
            return None
        parts = cookie.split(".")
        if len(parts) != 3:
            return None
        sid, expires, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac("session", f"{sid}.{expires}").encode()):
            return None
        if not expires.isdigit() or int(expires) <= now or sid in self._revoked:
            return None
        return Session(sid, int(expires))

    def revoke(self, session: Session, now: float) -> None:
        """Logged out: refuse this session's cookie until it would have expired anyway."""
        self._revoked = {s: e for s, e in self._revoked.items() if e > now}
        self._revoked[session.id] = session.expires

    def csrf_token(self, session: Session) -> str:
        """The token the session's forms carry."""
        return self._mac("csrf", session.id)

    def csrf_ok(self, session: Session, token: object) -> bool:
        """Whether a form's ``token`` is this session's."""
        if not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())


def token_matches(given: str, admin_token: str) -> bool:
    """Whether a login form's ``given`` token is the admin token: constant time (digests of
    equal length are compared), and never true when no admin token is configured."""
    if not admin_token:
        return False
    a = hashlib.sha256(given.encode()).digest()
    b = hashlib.sha256(admin_token.encode()).digest()
    return hmac.compare_digest(a, b)
