"""What the LOKE sandbox tests share: the sandbox on a real socket, a token source, and the
bridge's LOKE client pointed at the sandbox."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bridge.config import LokeConfig
from bridge.platforms.loke.api import LokeApi
from bridge.platforms.loke.sandbox.app import start_sandbox
from bridge.platforms.loke.sandbox.state import AccessGrant, SandboxState, demo_state
from tests.conftest import make_config

CLIENT_ID = "pos-bridge"
CLIENT_SECRET = "sandbox-client-secret-0123456789"
ORG = "org-bistro"
LOCATIONS = [f"loc-bistro-{i}" for i in range(1, 6)]


@dataclass
class Clock:
    """The sandbox's clock, moved by the tests."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class MintedTokens:
    """A token source for the tests (the bridge's is ``LokeTokens``, tested elsewhere).

    It mints tokens by writing an :class:`AccessGrant` into ``state.access_tokens``: that
    state is the platform's (the sandbox stands in for LOKE), not a component of ours, so
    this is how LOKE's issuer would have granted them; the sandbox's issuer is not needed
    to test the platform API. ``rejected()`` calls are counted.
    """

    state: SandboxState
    clock: Clock
    ttl_s: float = 3600.0
    current: dict[str, str] = field(default_factory=dict)
    rejections: int = 0

    def mint(self, organizations: tuple[str, ...] = (ORG,), ttl_s: float | None = None) -> str:
        token = secrets.token_urlsafe(24)
        expires = self.clock() + (self.ttl_s if ttl_s is None else ttl_s)
        self.state.access_tokens[token] = AccessGrant(CLIENT_ID, organizations, expires)
        return token

    async def access_token(self, organization_id: str) -> str:
        if organization_id not in self.current:
            self.current[organization_id] = self.mint((organization_id,))
        return self.current[organization_id]

    async def rejected(self, organization_id: str, token: str) -> str:
        self.rejections += 1
        self.current[organization_id] = self.mint((organization_id,))
        return self.current[organization_id]


@dataclass
class Sandbox:
    state: SandboxState
    clock: Clock
    url: str
    tokens: MintedTokens
    session: aiohttp.ClientSession

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, json=body) as response:
            text = await response.text()
            return response.status, (await response.json() if text else None)


@asynccontextmanager
async def running_sandbox() -> AsyncIterator[Sandbox]:
    clock = Clock()
    state = demo_state(CLIENT_ID, CLIENT_SECRET, ("http://127.0.0.1/cb",))
    runner, url = await start_sandbox("127.0.0.1", 0, state, clock=clock)
    try:
        async with aiohttp.ClientSession() as session:
            yield Sandbox(state, clock, url, MintedTokens(state, clock), session)
    finally:
        await runner.cleanup()


def loke_config(tmp_path: Path, api_url: str, **extra: Any) -> LokeConfig:
    loke = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "api_url": api_url + "/"}
    config = make_config(tmp_path, loke={**loke, **extra})
    assert config.loke is not None
    return config.loke


def client(sandbox: Sandbox, tmp_path: Path, **kwargs: Any) -> LokeApi:
    timeout = kwargs.pop("http_timeout_s", 5.0)
    config = loke_config(tmp_path, sandbox.url, http_timeout_s=timeout)
    return LokeApi(sandbox.session, config, sandbox.tokens, retry_delay_s=0.01, **kwargs)
