"""What the LOKE sandbox holds: organisations, locations, clients, grants and what addons
published. Shared by the issuer (``issuer.py``) and the platform API (``platform_api.py``).

Pure data and rules: no sockets, no clock (``now`` is an argument, seconds since the epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Location:
    id: str
    name: str
    timezone: str = "Australia/Melbourne"


@dataclass
class Organization:
    id: str
    name: str
    currency: str = "AUD"
    timezone: str = "Australia/Melbourne"
    locations: list[Location] = field(default_factory=list)
    #: RFC 3339, as LOKE's ``Organization.created``.
    created: str = "2024-01-15T00:00:00Z"


@dataclass
class Client:
    """An addon registered with LOKE (its credentials come from LOKE support)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    #: Organisations that installed this addon.
    installed: set[str] = field(default_factory=set)


@dataclass
class AccessGrant:
    """What one access token reaches, until when."""

    client_id: str
    organizations: tuple[str, ...]
    expires_at: float
    scope: str = ""


@dataclass
class AuthorizationCode:
    """A code the consent page handed out: single use, bound to its client, redirect URI and
    PKCE challenge, for the one organisation picked."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    organization: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float
    nonce: str | None = None


@dataclass
class RefreshToken:
    """A refresh token and the family it was rotated from (the first code exchange starts a
    family; reuse of a rotated token revokes the whole family)."""

    token: str
    client_id: str
    organizations: tuple[str, ...]
    scope: str
    family: str
    expires_at: float
    #: Replaced by a newer one (rotation); presenting it again is reuse.
    rotated: bool = False
    revoked: bool = False


@dataclass
class Published:
    """What an addon published for one location (``docs/loke-linking.md``, inferred)."""

    tables: list[dict[str, Any]] | None = None
    #: ``{"fetchBillUrl", "addPaymentUrl", "auth": {"scheme", "secret"}}``
    pay_at_table: dict[str, Any] | None = None


@dataclass
class Fault:
    """Failure injection: the next ``count`` calls whose path starts with ``path`` answer
    ``status`` (0: no status change) after ``delay_s``."""

    path: str
    status: int = 0
    count: int = 1
    delay_s: float = 0.0


@dataclass
class SandboxState:
    organizations: dict[str, Organization] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    access_tokens: dict[str, AccessGrant] = field(default_factory=dict)
    published: dict[tuple[str, str], Published] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    #: Every call the sandbox answered, as ``"METHOD /path"`` (no query), in order.
    calls: list[str] = field(default_factory=list)
    access_token_ttl_s: float = 3600.0
    refresh_token_ttl_s: float = 30 * 24 * 3600.0
    page_size: int = 20
    #: The issuer's own records (``issuer.py``).
    authorization_codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    #: Each refresh answers a new refresh token and retires the one used (off: the same
    #: refresh token keeps working and the answer carries none).
    rotate_refresh_tokens: bool = True
    authorization_code_ttl_s: float = 600.0

    def grant_for(self, token: str, now: float) -> AccessGrant | None:
        """The grant behind a bearer token, if it is known and not expired."""
        grant = self.access_tokens.get(token)
        if grant is None or grant.expires_at <= now:
            return None
        return grant

    def take_fault(self, path: str) -> Fault | None:
        """The first fault for ``path``, counted down (removed at zero)."""
        for fault in self.faults:
            if path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None


def demo_state(client_id: str, client_secret: str, redirect_uris: tuple[str, ...]) -> SandboxState:
    """The sandbox as ``pos-bridge loke-sandbox`` and the demo start it: one addon client,
    two organisations (the first has installed the addon) with enough locations to page."""
    bistro = Organization(
        "org-bistro",
        "Sandbox Bistro Group",
        locations=[
            Location(f"loc-bistro-{i}", f"Bistro {name}")
            for i, name in enumerate(
                ["Fitzroy", "Carlton", "Richmond", "St Kilda", "Brunswick"], start=1
            )
        ],
    )
    other = Organization(
        "org-other", "Another Group", locations=[Location("loc-other-1", "Elsewhere")]
    )
    client = Client(client_id, client_secret, redirect_uris, installed={bistro.id})
    return SandboxState(
        organizations={bistro.id: bistro, other.id: other},
        clients={client_id: client},
    )
