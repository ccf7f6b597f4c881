"""The sandbox's OIDC issuer on a real socket: discovery, consent, the three grants, PKCE,
rotation with reuse detection, revocation, JWKS and the ``/_sandbox/`` controls."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.platforms.loke_oauth.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORG,
    Harness,
    consent_form,
)

VERIFIER = "v" * 64


def basic(secret: str = CLIENT_SECRET) -> dict[str, str]:
    pair = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def authorize_query(h: Harness, **changes: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": h.callback,
        "scope": "openid offline",
        "state": "s-123",
        "nonce": "n-456",
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    query.update(changes)
    return {k: v for k, v in query.items() if v}


async def get(h: Harness, path: str, **params: str) -> tuple[int, str, str]:
    async with h.session.get(f"{h.issuer}{path}", params=params, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


async def post(h: Harness, path: str, data: dict[str, str], **kw: Any) -> tuple[int, Any]:
    async with h.session.post(f"{h.issuer}{path}", data=data, allow_redirects=False, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else r.headers["Location"]
        return r.status, body


async def code_for(h: Harness, organization: str = ORG, **changes: str) -> str:
    status, html, _ = await get(h, "/authorize", **authorize_query(h, **changes))
    assert status == 200, html
    data = dict(consent_form(html).hidden, organization=organization, decision="allow")
    status, location = await post(h, "/authorize", data)
    assert status == 302
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["s-123"]
    return query["code"][0]


async def exchange(h: Harness, code: str, verifier: str = VERIFIER) -> tuple[int, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": h.callback,
        "code_verifier": verifier,
    }
    return await post(h, "/token", form, headers=basic())


async def refresh(h: Harness, token: str) -> tuple[int, Any]:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return await post(h, "/token", form, headers=basic())


async def test_discovery_names_every_endpoint(h: Harness) -> None:
    status, _, _ = await get(h, "/.well-known/openid-configuration")
    assert status == 200
    doc = await h.connector.discover()
    assert doc.issuer == f"{h.issuer}/"
    assert doc.token_endpoint == f"{h.issuer}/token"
    async with h.session.get(f"{h.issuer}/.well-known/openid-configuration") as r:
        body = await r.json()
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["response_types_supported"] == ["code"]
    assert set(body["scopes_supported"]) == {"openid", "offline", "email"}
    assert body["revocation_endpoint"] == f"{h.issuer}/revoke"
    assert body["jwks_uri"] == f"{h.issuer}/jwks"
    assert {"authorization_code", "refresh_token", "client_credentials"} == set(
        body["grant_types_supported"]
    )
    assert "GET /.well-known/openid-configuration" in h.state.calls


async def test_consent_lists_the_installing_organisations_and_preselects_the_hint(
    h: Harness,
) -> None:
    h.state.clients[CLIENT_ID].installed.add("org-other")
    status, html, _ = await get(h, "/authorize", **authorize_query(h, login_hint="org=org-other"))
    assert status == 200
    form = consent_form(html)
    assert [(r["value"], r["checked"]) for r in form.radios] == [
        ("org-bistro", ""),
        ("org-other", "yes"),
    ]
    assert {b["id"] for b in form.buttons} == {"allow", "deny"}
    assert all(r["name"] == "organization" for r in form.radios)


async def test_authorize_refuses_bad_requests(h: Harness) -> None:
    status, body, _ = await get(h, "/authorize", **authorize_query(h, client_id="nobody"))
    assert status == 400 and '"invalid_client"' in body
    status, body, _ = await get(h, "/authorize", **authorize_query(h, redirect_uri="http://x/"))
    assert status == 400 and '"invalid_request"' in body
    # With a good client and redirect URI, the error goes back to the client (RFC 6749 4.1.2.1).
    for changes in ({"code_challenge": ""}, {"code_challenge_method": "plain"}):
        status, _, location = await get(h, "/authorize", **authorize_query(h, **changes))
        assert status == 302 and location.startswith(h.callback)
        assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]
    status, _, location = await get(h, "/authorize", **authorize_query(h, response_type="token"))
    assert status == 302 and "error=unsupported_response_type" in location


async def test_consent_for_an_organisation_that_did_not_install_is_refused(h: Harness) -> None:
    _, html, _ = await get(h, "/authorize", **authorize_query(h))
    data = dict(consent_form(html).hidden, organization="org-other", decision="allow")
    status, body = await post(h, "/authorize", data)
    assert status == 400 and body["error"] == "invalid_request"


async def test_a_code_is_single_use_and_bound_to_its_verifier(h: Harness) -> None:
    code = await code_for(h)
    status, body = await exchange(h, code, verifier="w" * 64)
    assert status == 400 and body["error"] == "invalid_grant"
    status, body = await exchange(h, code)  # burnt by the failed attempt
    assert status == 400 and body["error"] == "invalid_grant"
    code = await code_for(h)
    assert (await exchange(h, code))[0] == 200
    status, body = await exchange(h, code)
    assert status == 400 and body["error"] == "invalid_grant"


async def test_the_id_token_is_signed_by_the_jwks(h: Harness) -> None:
    status, body = await exchange(h, await code_for(h))
    assert status == 200
    async with h.session.get(f"{h.issuer}/jwks") as r:
        keys = KeySet.import_key_set(await r.json())
    claims = jwt.decode(body["id_token"], keys).claims
    assert claims["iss"] == f"{h.issuer}/" and claims["aud"] == CLIENT_ID
    assert claims["nonce"] == "n-456" and claims["exp"] > claims["iat"] == int(h.clock())


async def test_refresh_rotates_and_reuse_revokes_the_family(h: Harness) -> None:
    _, first = await exchange(h, await code_for(h))
    status, second = await refresh(h, first["refresh_token"])
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert h.state.grant_for(second["access_token"], h.clock()).organizations == (ORG,)
    status, body = await refresh(h, first["refresh_token"])  # reuse
    assert status == 400 and body["error"] == "invalid_grant"
    status, body = await refresh(h, second["refresh_token"])  # the family is gone
    assert status == 400 and body["error"] == "invalid_grant"


async def test_refresh_tokens_expire_after_their_ttl(h: Harness) -> None:
    await h.sandbox("PUT", "/_sandbox/settings", {"refreshTokenTtlS": 100})
    _, first = await exchange(h, await code_for(h))
    h.clock.advance(101)
    status, body = await refresh(h, first["refresh_token"])
    assert status == 400 and body["error"] == "invalid_grant"


async def test_no_offline_scope_no_refresh_token(h: Harness) -> None:
    status, body = await exchange(h, await code_for(h, scope="openid"))
    assert status == 200 and "refresh_token" not in body and "id_token" in body


async def test_client_credentials_reach_every_installing_organisation(h: Harness) -> None:
    h.state.clients[CLIENT_ID].installed.add("org-other")
    form = {"grant_type": "client_credentials"}
    status, body = await post(h, "/token", form, headers=basic())
    assert status == 200 and "refresh_token" not in body
    grant = h.state.grant_for(body["access_token"], h.clock())
    assert grant is not None and grant.organizations == ("org-bistro", "org-other")
    # client_secret_post works too; a wrong secret does not.
    posted = {**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert (await post(h, "/token", posted))[0] == 200
    status, body = await post(h, "/token", form, headers=basic("wrong-secret-0123456789"))
    assert status == 401 and body["error"] == "invalid_client"
    status, body = await post(h, "/token", {"grant_type": "password"}, headers=basic())
    assert status == 400 and body["error"] == "unsupported_grant_type"


async def test_revocation(h: Harness) -> None:
    _, tokens = await exchange(h, await code_for(h))
    status, _ = await post(h, "/revoke", {"token": tokens["access_token"]}, headers=basic())
    assert status == 200 and h.state.grant_for(tokens["access_token"], h.clock()) is None
    status, _ = await post(h, "/revoke", {"token": tokens["refresh_token"]}, headers=basic())
    assert status == 200
    assert (await refresh(h, tokens["refresh_token"]))[1]["error"] == "invalid_grant"
    assert (await post(h, "/revoke", {"token": "unknown"}, headers=basic()))[0] == 200


async def test_sandbox_controls(h: Harness) -> None:
    settings = await h.sandbox("PUT", "/_sandbox/settings", {"accessTokenTtlS": 30})
    assert settings["accessTokenTtlS"] == 30 and settings["rotateRefreshTokens"] is True
    _, tokens = await exchange(h, await code_for(h))
    assert tokens["expires_in"] == 30
    assert h.state.grant_for(tokens["access_token"], h.clock() + 29) is not None
    assert h.state.grant_for(tokens["access_token"], h.clock() + 30) is None
    await h.sandbox("POST", "/_sandbox/tokens/expire")
    assert h.state.grant_for(tokens["access_token"], h.clock()) is None
    for bad in ({"accessTokenTtlS": 0}, {"unknown": 1}, {"rotateRefreshTokens": "x"}):
        async with h.session.put(f"{h.issuer}/_sandbox/settings", json=bad) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_request"
    async with h.session.put(f"{h.issuer}/_sandbox/settings", data=b"{not json") as r:
        assert r.status == 400
    assert h.state.access_token_ttl_s == 30
