"""The LOKE sandbox's issuer on a real socket, a local callback page, and the bridge's OAuth
client and token keeping over a real SQLite file; a clock both sides share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.config import LokeConfig
from bridge.platforms.loke.oauth import LokeConnector, TokenSet
from bridge.platforms.loke.sandbox.issuer import add_issuer
from bridge.platforms.loke.sandbox.state import SandboxState, demo_state
from bridge.platforms.loke.tokens import LokeTokens
from bridge.store.database import Database
from bridge.store.oauth_tokens import OAuthTokens
from common.settings import load_file

CLIENT_ID = "pos-bridge-test"
CLIENT_SECRET = "client-secret-for-tests-0123456789"
ORG = "org-bistro"
START = 1_900_000_000.0


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FormParser(HTMLParser):
    """The consent page's inputs and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.radios: list[dict[str, str]] = []
        self.buttons: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values["value"]
        elif tag == "input" and values.get("type") == "radio":
            values["checked"] = "yes" if "checked" in values else ""
            self.radios.append(values)
        elif tag == "button":
            self.buttons.append(values)


def consent_form(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Harness:
    state: SandboxState
    clock: Clock
    issuer: str
    callback: str
    session: aiohttp.ClientSession
    connector: LokeConnector
    db_path: Path
    db: Database
    tokens: LokeTokens
    runners: list[web.AppRunner] = field(default_factory=list)

    def token_calls(self) -> int:
        return self.state.calls.count("POST /token")

    async def consent(self, organization: str = ORG, decision: str = "allow") -> dict[str, str]:
        """Start the flow, load the consent page, submit it, follow the 302 to the local
        callback page; the callback's query."""
        url = await self.connector.authorization_url(self.callback, organization)
        async with self.session.get(url) as page:
            assert page.status == 200, await page.text()
            form = consent_form(await page.text())
        data = dict(form.hidden, decision=decision)
        if decision == "allow":
            data["organization"] = organization
        async with self.session.post(f"{self.issuer}/authorize", data=data) as answer:
            assert answer.status == 200, await answer.text()
            assert str(answer.url).startswith(self.callback)
            query: dict[str, str] = await answer.json()
        return query

    async def connect(self, organization: str = ORG) -> TokenSet:
        """The whole code flow, and the tokens stored for ``organization``."""
        tokens = await self.connector.complete(await self.consent(organization))
        await self.tokens.store_new([organization], tokens)
        return tokens

    async def reopen(self) -> None:
        """A restart: the database closed and opened again, a new connector and keeper."""
        await self.db.close()
        self.db = Database(self.db_path)
        await self.db.open()
        self.connector = LokeConnector(self.connector.config, self.session, self.clock)
        self.tokens = LokeTokens(OAuthTokens(self.db), self.connector, self.clock)

    async def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.issuer}{path}", json=body) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()


def loke_config(issuer: str, callback: str, **overrides: Any) -> LokeConfig:
    data = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": callback,
        "http_timeout_s": 5.0,
        **overrides,
    }
    return load_file(LokeConfig, data, {})


async def harness(tmp_path: Path, **config: Any) -> AsyncIterator[Harness]:
    clock = Clock()

    async def callback(request: web.Request) -> web.Response:
        return web.json_response(dict(request.query))

    callback_app = web.Application()
    callback_app.router.add_get("/admin/loke/callback", callback)
    callback_runner, callback_base = await serve(callback_app)
    callback_url = f"{callback_base}/admin/loke/callback"

    state = demo_state(CLIENT_ID, CLIENT_SECRET, (callback_url,))
    app = web.Application()
    add_issuer(app, state, clock)
    issuer_runner, issuer = await serve(app)

    session = aiohttp.ClientSession()
    db_path = tmp_path / "bridge.sqlite3"
    db = Database(db_path)
    await db.open()
    connector = LokeConnector(loke_config(issuer, callback_url, **config), session, clock)
    h = Harness(
        state=state,
        clock=clock,
        issuer=issuer,
        callback=callback_url,
        session=session,
        connector=connector,
        db_path=db_path,
        db=db,
        tokens=LokeTokens(OAuthTokens(db), connector, clock),
        runners=[callback_runner, issuer_runner],
    )
    try:
        yield h
    finally:
        await h.db.close()
        await session.close()
        for runner in h.runners:
            await runner.cleanup()
