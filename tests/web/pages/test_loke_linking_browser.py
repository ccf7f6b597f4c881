"""The LOKE linking page in a real browser (chromium, headless): log in, connect to the LOKE
sandbox, consent on its page, see the organisation's locations, link one, unlink it. Each
step leaves a screenshot under ``test-artifacts/<test>/``; README shows the link step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from playwright.async_api import Page, expect

from tests.conftest import ADMIN_TOKEN
from tests.platforms.test_loke_linking_flow import CLIENT_ID, LOC, ORG, loke_section, sandbox
from tests.relay.harness import relay_and_bridge
from tests.web.pages.browser import Steps


async def test_login_connect_consent_list_link_unlink(
    tmp_path: Path, page: Page, step: Steps
) -> None:
    async with (
        sandbox() as (state, sandbox_url),
        relay_and_bridge(tmp_path, loke=loke_section(sandbox_url)) as (_relay, uplink),
    ):
        assert uplink.origin is not None
        base = f"http://127.0.0.1:{uplink.origin.port}"
        client = state.clients[CLIENT_ID]
        state.clients[CLIENT_ID] = replace(client, redirect_uris=(f"{base}/admin/loke/callback",))

        await page.goto(base + "/admin/loke")
        await page.fill("#token", ADMIN_TOKEN)
        await step(page, "login")
        await page.click("#login")
        await expect(page).to_have_url(base + "/admin/loke")
        await expect(page.locator("#not-connected")).to_be_visible()
        await step(page, "not connected")

        await page.click("#connect")
        await expect(page.locator("#allow")).to_be_visible()
        await page.check(f"#org-{ORG}")
        await step(page, "LOKE consent")
        await page.click("#allow")

        await expect(page.locator("#message")).to_contain_text("Connected: Sandbox Bistro Group")
        await expect(page.locator(f"#state-{ORG}")).to_have_text("ok")
        rows = page.locator("tr[data-loke-location]")
        await expect(rows).to_have_count(5)
        await step(page, "LOKE locations listed")

        row = page.locator(f'tr[data-loke-location="{LOC}"]')
        await row.locator("button.link").click()
        await expect(page.locator("#message")).to_contain_text("Linked Bistro Richmond")
        link = page.locator(f'#links tr[data-link="{LOC}"]')
        await expect(link.locator("td.tables")).to_contain_text("1, 2, 3")
        await expect(link.locator("td.urls")).not_to_have_text("not yet")
        await step(page, "linked")
        assert state.published[(ORG, LOC)].pay_at_table is not None

        await link.locator("button.unlink").click()
        await expect(page.locator("#message")).to_contain_text("Unlinked Bistro Richmond")
        await expect(page.locator(f'#links tr[data-link="{LOC}"]')).to_have_count(0)
        await step(page, "unlinked")
        withdrawn = state.published.get((ORG, LOC))
        assert withdrawn is None or withdrawn.pay_at_table is None
