"""The demo's LOKE: the sandbox on 127.0.0.1, the bridge linked to one of its locations the
way a technician would do it on the linking page, and sandbox guests paying a bill.

Why over HTTP, as a browser would: the demo then shows the real flow (log in, connect, the
sandbox's consent, link), and what it printed can be redone by hand on the page.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TextIO

import aiohttp
from aiohttp import web
from yarl import URL

from bridge.platforms.loke.sandbox.app import start_sandbox
from bridge.platforms.loke.sandbox.guests import GuestsResult, Registration, pay_bill
from bridge.platforms.loke.sandbox.state import SandboxState, demo_state

CLIENT_ID = "pos-bridge-demo"
ORGANIZATION = "org-bistro"
LOCATION = "loc-bistro-1"


class DemoLinkError(Exception):
    """The demo could not link its sandbox location (one line for the terminal)."""


async def start_demo_sandbox(client_secret: str) -> tuple[web.AppRunner, SandboxState, str]:
    state = demo_state(CLIENT_ID, client_secret, ())
    runner, base = await start_sandbox("127.0.0.1", 0, state)
    return runner, state, base


def loke_config_text(sandbox: str, client_secret: str) -> str:
    return f"""
[loke]
issuer = "{sandbox}/"
api_url = "{sandbox}"
client_id = "{CLIENT_ID}"
client_secret = "{client_secret}"
"""


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if found is None:
        raise DemoLinkError("the linking page has no form")
    return found.group(1)


async def link_location(state: SandboxState, bridge: str, admin_token: str) -> Registration:
    """Log in, connect to the sandbox, consent, link :data:`LOCATION` to the POS's location
    1; what the bridge registered at the sandbox."""
    client = state.clients[CLIENT_ID]
    state.clients[CLIENT_ID] = replace(client, redirect_uris=(f"{bridge}/admin/loke/callback",))
    jar = aiohttp.CookieJar(unsafe=True)  # the bridge is 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:

        async def form(path: str, **fields: str) -> aiohttp.ClientResponse:
            async with http.get(f"{bridge}/admin/loke") as page:
                token = _csrf(await page.text())
            async with http.post(
                bridge + path, data={"csrf": token, **fields}, allow_redirects=False
            ) as response:
                await response.read()
                return response

        async with http.post(
            f"{bridge}/admin/login", data={"token": admin_token}, allow_redirects=False
        ) as login:
            if login.status != 303:
                raise DemoLinkError(f"login answered {login.status}")
        started = await form("/admin/loke/connect")
        async with http.get(started.headers["Location"]) as consent:
            html = await consent.text()
            consent_url = consent.url
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
        action = re.search(r'<form method="post" action="([^"]+)"', html)
        if action is None:
            raise DemoLinkError("the sandbox's consent page has no form")
        url = consent_url.join(URL(action.group(1).replace("&amp;", "&")))
        fields |= {"organization": ORGANIZATION, "decision": "allow"}
        async with http.post(url, data=fields, allow_redirects=False) as granted:
            back = granted.headers.get("Location", "")
        async with http.get(back) as landed:
            if "Connected" not in await landed.text():
                raise DemoLinkError("the bridge did not connect to the sandbox")
        await form(
            "/admin/loke/links",
            organization=ORGANIZATION,
            location=LOCATION,
            name="Bistro Fitzroy",
            driver="main",
            pos_location="1",
        )
    published = state.published.get((ORGANIZATION, LOCATION))
    if published is None or published.pay_at_table is None:
        raise DemoLinkError("the bridge registered no URLs at the sandbox")
    return Registration.from_published(published.pay_at_table)


async def guests_pay(registration: Registration, table: int, splits: int) -> GuestsResult:
    async with aiohttp.ClientSession() as http:
        return await pay_bill(http, registration, table, splits)


async def walk(
    sandbox: SandboxState, sandbox_base: str, base: str, admin: str, out: TextIO
) -> None:
    """Link a sandbox location as a technician would, then let three guests pay a bill
    through the URLs the bridge registered (through the relay)."""
    lines = [
        "",
        f"LOKE sandbox at {sandbox_base} (pos-bridge loke-sandbox runs it alone)",
        f"  linking page: {base}/admin/loke   (log in with the admin token: {admin})",
    ]
    try:
        registration = await link_location(sandbox, base, admin)
        table = 3
        result = await guests_pay(registration, table, splits=3)
    except (DemoLinkError, aiohttp.ClientError, KeyError) as exc:
        lines.append(f"  could not link the sandbox location on its own: {exc}")
    else:
        lines += [
            f"  linked LOKE location {LOCATION} to POS location 1: tables published,"
            " URLs registered:",
            f"    {registration.fetch_bill_url}",
            f"  three sandbox guests paid table {table}'s bill of {result.bill['balance']}"
            " at once, through the relay:",
        ]
        for split in result.splits:
            lines.append(f"    {split.payment_id}: {split.amount} -> HTTP {split.status}")
        closed = result.after_status == 404
        lines.append(
            f"  table {table} on the POS: {'bill closed' if closed else 'still open'}"
            f" (fetching it again answers {result.after_status})"
        )
    out.write("\n".join([*lines, ""]))
    out.flush()
