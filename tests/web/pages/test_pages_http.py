"""The technician's pages over plain HTTP (a real bridge on a real socket, no browser): the
login, its cookie, the redirects, CSRF and a POS that does not answer. The browser walk is
``test_pages_browser.py``."""

from __future__ import annotations

import re

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from yarl import URL

from bridge.web.pages.guard import safe_next
from bridge.web.pages.session import COOKIE_NAME, Sessions
from tests.conftest import ADMIN_TOKEN, LOCATION, set_mode


async def login(
    client: TestClient, token: str = ADMIN_TOKEN, next_page: str = ""
) -> ClientResponse:
    data = {"token": token, **({"next": next_page} if next_page else {})}
    return await client.post("/admin/login", data=data, allow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_a_page_asks_a_stranger_to_log_in_first(client):
    response = await client.get("/admin?x=1", allow_redirects=False)
    assert response.status == 303
    location = URL(response.headers["Location"])
    assert (location.path, location.query["next"]) == ("/admin/login", "/admin?x=1")
    page = await client.get("/admin/login")
    assert page.status == 200
    assert 'name="token"' in await page.text()


async def test_the_right_token_sets_a_locked_down_cookie_and_goes_where_asked(client):
    response = await login(client, next_page="/admin?x=1")
    assert response.status == 303
    assert response.headers["Location"] == "/admin?x=1"
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/admin"
    assert int(cookie["max-age"]) > 0
    assert ADMIN_TOKEN not in cookie.value
    overview = await client.get("/admin", allow_redirects=False)
    assert overview.status == 200
    assert "Overview" in await overview.text()


@pytest.mark.parametrize("token", ["", "wrong-token", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x"])
async def test_a_wrong_token_is_refused_with_a_message_and_no_cookie(client, token):
    response = await login(client, token)
    assert response.status == 401
    assert "not this bridge&#39;s admin token" in await response.text()
    assert COOKIE_NAME not in response.cookies
    assert (await client.get("/admin", allow_redirects=False)).status == 303


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/x?y=1", "/admin/x?y=1"),
        ("//evil.example/admin", "/admin"),
        ("/admin//evil.example", "/admin"),
        ("/admin/\\evil.example", "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("/administrator", "/admin"),
        ("/api/status", "/admin"),
        (None, "/admin"),
    ],
)
def test_after_login_only_our_own_pages_are_a_destination(target, expected):
    assert safe_next(target) == expected


async def test_a_forged_or_altered_cookie_is_no_session(client):
    response = await login(client)
    good = response.cookies[COOKIE_NAME].value
    sid, expires, mac = good.split(".")
    forged = [
        f"{sid}.{int(expires) + 10**6}.{mac}",  # a longer life, same MAC
        f"{sid}x.{expires}.{mac}",
        f"{sid}.{expires}.{'0' * len(mac)}",
        Sessions().issue(0)[1],  # another key's cookie
        "garbage",
    ]
    client.session.cookie_jar.clear()
    for value in forged:
        answer = await client.get("/admin", cookies={COOKIE_NAME: value}, allow_redirects=False)
        assert answer.status == 303, value
    answer = await client.get("/admin", cookies={COOKIE_NAME: good}, allow_redirects=False)
    assert answer.status == 200


def test_a_session_ends_at_its_expiry_and_when_revoked():
    sessions = Sessions(ttl_s=60)
    session, cookie = sessions.issue(1000)
    assert sessions.verify(cookie, 1059) == session
    assert sessions.verify(cookie, 1060) is None
    sessions.revoke(session, 1001)
    assert sessions.verify(cookie, 1002) is None
    other, other_cookie = sessions.issue(1000)
    assert sessions.csrf_ok(other, sessions.csrf_token(other))
    assert not sessions.csrf_ok(other, sessions.csrf_token(session))
    assert not sessions.csrf_ok(other, "")
    assert sessions.verify(other_cookie, 1002) == other


async def test_a_form_without_the_csrf_token_is_refused_with_a_403_page(client):
    await login(client)
    page = await (await client.get("/admin")).text()
    token = csrf_of(page)
    for data in ({}, {"csrf": ""}, {"csrf": token[:-1] + ("1" if token[-1] == "0" else "0")}):
        response = await client.post("/admin/logout", data=data, allow_redirects=False)
        assert response.status == 403, data
        assert response.content_type == "text/html"
        assert "CSRF" in await response.text()
    assert (await client.get("/admin", allow_redirects=False)).status == 200  # still logged in
    response = await client.post("/admin/logout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/login"


async def test_logging_out_ends_the_session_even_for_a_copied_cookie(client):
    cookie = (await login(client)).cookies[COOKIE_NAME].value
    token = csrf_of(await (await client.get("/admin")).text())
    await client.post("/admin/logout", data={"csrf": token}, allow_redirects=False)
    answer = await client.get("/admin", cookies={COOKIE_NAME: cookie}, allow_redirects=False)
    assert answer.status == 303


async def test_a_post_without_a_session_goes_to_the_login_page(client):
    response = await client.post("/admin/logout", data={}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/login?next=")


async def test_the_overview_shows_tables_and_an_offline_pos_without_failing(client):
    await login(client)
    page = await (await client.get("/admin")).text()
    row = re.search(rf'<tr data-location="{LOCATION}">(.*?)</tr>', page, re.S)
    assert row and "1, 2, 3" in row.group(1), page
    await set_mode(client, "offline")
    response = await client.get("/admin")
    assert response.status == 200
    page = await response.text()
    row = re.search(rf'<tr data-location="{LOCATION}">(.*?)</tr>', page, re.S)
    assert row and 'class="tables offline"' in row.group(1), page
    pos = re.search(r'<tr data-driver="main">(.*?)</tr>', page, re.S)
    assert pos and ">offline<" in pos.group(1), page


async def test_pages_send_no_script_and_refuse_framing(client):
    response = await client.get("/admin/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "<script" not in await response.text()
    css = await client.get("/admin/static/pages.css")
    assert css.status == 200
