"""The technician's pages in a real browser (chromium, headless) against a real bridge with
the simulated POS; each step leaves a screenshot under ``test-artifacts/<test>/``."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from tests.conftest import ADMIN_TOKEN, LOCATION, set_mode
from tests.relay.harness import relay_and_bridge
from tests.web.pages.browser import Steps


def base_url(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_login_overview_offline_and_logout(client: TestClient, page: Page, step: Steps):
    base = base_url(client)
    await page.goto(base + "/admin")
    await expect(page).to_have_url(base + "/admin/login?next=/admin")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await step(page, "login page")

    await page.fill("#token", "not-the-admin-token")
    await page.click("#login")
    await expect(page.locator("#login-error")).to_contain_text("not this bridge's admin token")
    await step(page, "wrong token refused")

    await page.fill("#token", ADMIN_TOKEN)
    await page.click("#login")
    await expect(page).to_have_url(base + "/admin")
    pos = page.locator('#pos tr[data-driver="main"] td.state')
    await expect(pos).to_have_text("online")
    tables = page.locator(f'#locations tr[data-location="{LOCATION}"] td.tables')
    await expect(tables).to_have_text("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")
    await expect(page.locator("#queue-depth")).to_have_text("0")
    await step(page, "overview online")

    await set_mode(client, "offline")
    await page.reload()
    await expect(pos).to_have_text("offline")
    await expect(tables).to_have_text("offline")
    await step(page, "overview offline")

    await page.click("#logout")
    await expect(page).to_have_url(base + "/admin/login")
    await page.goto(base + "/admin")
    await expect(page).to_have_url(base + "/admin/login?next=/admin")
    await step(page, "logged out")


async def test_a_form_without_its_csrf_token_is_refused(
    client: TestClient, page: Page, step: Steps
):
    base = base_url(client)
    await page.goto(base + "/admin/login")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("#login")
    await expect(page).to_have_url(base + "/admin")
    # The logout form as another site would send it: no token.
    await page.locator('input[name="csrf"]').evaluate("e => e.remove()")
    await step(page, "form without its token")
    async with page.expect_navigation():
        await page.click("#logout")
    await expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("CSRF")
    await step(page, "refused 403")
    answer = await page.request.post(base + "/admin/logout", form={"csrf": "forged"})
    assert answer.status == 403
    await page.goto(base + "/admin")  # still logged in: the refused form changed nothing
    await expect(page).to_have_url(base + "/admin")


async def test_the_pages_are_not_found_through_the_relay(tmp_path, page: Page, step: Steps):
    async with relay_and_bridge(tmp_path) as (relay, uplink):
        assert uplink.origin is not None
        public = f"{relay.url}/v/cafe-a"
        for path in ("/admin", "/admin/login"):
            response = await page.goto(public + path)
            assert response is not None and response.status == 404, path
            await expect(page.locator("body")).to_contain_text("not_found")
        await step(page, "tunnelled admin is 404")
        direct = await page.goto(f"http://127.0.0.1:{uplink.origin.port}/admin/login")
        assert direct is not None and direct.status == 200
        await step(page, "local login page")
