"""The bridge's LOKE OAuth client and token keeping, against the sandbox's issuer over real
sockets and a real SQLite file (issue 15's acceptance list, one test each)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.oauth import LokeAuthError, LokeUnavailableError
from bridge.platforms.loke.sandbox.state import Fault
from bridge.platforms.loke.tokens import ReauthoriseError
from tests.platforms.loke_oauth.harness import CLIENT_ID, ORG, Harness


async def test_code_flow_with_pkce_end_to_end(h: Harness) -> None:
    query = await h.consent()
    assert set(query) == {"code", "state"}
    tokens = await h.connector.complete(query)

    grant = h.state.grant_for(tokens.access_token, h.clock())
    assert grant is not None and grant.organizations == (ORG,) and grant.client_id == CLIENT_ID
    assert tokens.refresh_token and tokens.id_token
    assert tokens.expires_at == h.clock() + h.state.access_token_ttl_s
    assert set(tokens.scope.split()) == {"openid", "offline", "email"}
    await h.tokens.store_new([ORG], tokens)
    assert h.tokens.state(ORG) == "ok"
    assert await h.tokens.access_token(ORG) == tokens.access_token
    assert h.token_calls() == 1


async def test_the_authorization_url_asks_for_pkce_s256_consent_and_the_org(h: Harness) -> None:
    from urllib.parse import parse_qs, urlsplit

    url = await h.connector.authorization_url(h.callback, ORG)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["prompt"] == "consent" and query["login_hint"] == f"org={ORG}"
    assert query["scope"] == "openid offline email" and query["response_type"] == "code"
    assert query["redirect_uri"] == h.callback and len(query["state"]) >= 32


async def test_a_wrong_state_is_refused(h: Harness) -> None:
    query = await h.consent()
    with pytest.raises(LokeAuthError) as refused:
        await h.connector.complete({**query, "state": "not-the-state-we-sent"})
    assert refused.value.code == "state_mismatch"
    assert h.token_calls() == 0  # refused before LOKE is asked
    # The state is single use: the right one, a second time, is refused too.
    await h.connector.complete(query)
    with pytest.raises(LokeAuthError) as again:
        await h.connector.complete(query)
    assert again.value.code == "state_mismatch"


async def test_an_expired_state_is_refused(h: Harness) -> None:
    query = await h.consent()
    h.clock.advance(601)
    with pytest.raises(LokeAuthError) as refused:
        await h.connector.complete(query)
    assert refused.value.code == "state_expired"


async def test_a_wrong_verifier_is_refused(h: Harness) -> None:
    query = await h.consent()
    pending = h.connector._pending[query["state"]]
    h.connector._pending[query["state"]] = dataclasses.replace(pending, verifier="x" * 64)
    with pytest.raises(LokeAuthError) as refused:
        await h.connector.complete(query)
    assert refused.value.code == "invalid_grant"
    assert h.state.access_tokens == {}


async def test_denied_consent_is_access_denied(h: Harness) -> None:
    query = await h.consent(decision="deny")
    assert query["error"] == "access_denied"
    with pytest.raises(LokeAuthError) as refused:
        await h.connector.complete(query)
    assert refused.value.code == "access_denied"


async def test_an_access_token_expiring_mid_flow_is_refreshed(h: Harness) -> None:
    first = await h.connect()
    h.clock.advance(h.state.access_token_ttl_s - 60)  # inside the 120 s margin
    fresh = await h.tokens.access_token(ORG)
    assert fresh != first.access_token
    assert h.state.grant_for(fresh, h.clock()) is not None
    row = h.tokens.store.get(PLATFORM, ORG)
    assert row is not None and row.refresh_token not in (None, first.refresh_token)
    assert h.state.refresh_tokens[first.refresh_token or ""].rotated
    assert h.token_calls() == 2

    # LOKE expires it early (its side only): the 401 retry gets a fresh one, once.
    await h.sandbox("POST", "/_sandbox/tokens/expire")
    assert h.state.grant_for(fresh, h.clock()) is None
    assert await h.tokens.access_token(ORG) == fresh  # the bridge cannot know yet
    retried = await h.tokens.rejected(ORG, fresh)
    assert h.state.grant_for(retried, h.clock()) is not None
    assert h.token_calls() == 3


async def test_a_revoked_refresh_token_means_reauthorise_without_a_storm(h: Harness) -> None:
    await h.connect()
    await h.sandbox("POST", "/_sandbox/tokens/revoke")
    h.clock.advance(h.state.access_token_ttl_s)
    before = h.token_calls()
    for _ in range(20):
        with pytest.raises(ReauthoriseError):
            await h.tokens.access_token(ORG)
    assert h.token_calls() - before == 1
    assert h.tokens.state(ORG) == "reauthorise"
    assert h.tokens.reason(ORG).startswith("invalid_grant")
    assert await h.tokens.refresh_due() == {}  # the periodic job leaves it alone too
    with pytest.raises(ReauthoriseError):
        await h.tokens.rejected(ORG, "whatever")
    assert h.token_calls() - before == 1

    await h.connect()  # the technician connects again
    assert h.tokens.state(ORG) == "ok"


async def test_two_refreshes_racing_make_one_token_call(h: Harness) -> None:
    await h.connect()
    h.clock.advance(h.state.access_token_ttl_s)
    before = h.token_calls()
    results = await asyncio.gather(
        h.tokens.access_token(ORG), h.tokens.access_token(ORG), h.tokens.refresh(ORG)
    )
    assert len(set(results)) == 1
    assert h.token_calls() - before == 1
    # Two 401s for the same token: one refresh, both retry with its token.
    before = h.token_calls()
    stale = results[0]
    again = await asyncio.gather(h.tokens.rejected(ORG, stale), h.tokens.rejected(ORG, stale))
    assert again[0] == again[1] != results[0]
    assert h.token_calls() - before == 1
    assert h.tokens.state(ORG) == "ok"  # no reuse of a rotated refresh token


async def test_a_restart_keeps_the_tokens(h: Harness) -> None:
    tokens = await h.connect()
    await h.reopen()
    before = h.token_calls()
    assert await h.tokens.access_token(ORG) == tokens.access_token
    assert h.tokens.state(ORG) == "ok"
    assert h.token_calls() == before
    # …and the stored refresh token still refreshes after the restart.
    assert await h.tokens.refresh(ORG) != tokens.access_token


async def test_a_refresh_answer_without_refresh_token_keeps_the_old_one(h: Harness) -> None:
    tokens = await h.connect()
    await h.sandbox("PUT", "/_sandbox/settings", {"rotateRefreshTokens": False})
    fresh = await h.tokens.refresh(ORG)
    row = h.tokens.store.get(PLATFORM, ORG)
    assert row is not None and row.access_token == fresh != tokens.access_token
    assert row.refresh_token == tokens.refresh_token
    assert await h.tokens.refresh(ORG) not in (fresh, tokens.access_token)  # still works


async def test_a_transient_failure_is_typed_and_not_reauthorise(h: Harness) -> None:
    await h.connect()
    h.clock.advance(h.state.access_token_ttl_s)
    h.state.faults.append(Fault("/token", status=503, count=1))
    with pytest.raises(LokeUnavailableError):
        await h.tokens.access_token(ORG)
    assert h.tokens.state(ORG) == "ok"
    assert await h.tokens.refresh_due() == {ORG: "refreshed"}
    assert h.state.grant_for(await h.tokens.access_token(ORG), h.clock()) is not None


async def test_an_unreachable_issuer_is_typed(h: Harness) -> None:
    await h.connect()
    h.clock.advance(h.state.access_token_ttl_s)
    for runner in h.runners:
        await runner.cleanup()
    h.runners.clear()
    with pytest.raises(LokeUnavailableError):
        await h.tokens.access_token(ORG)
    assert h.tokens.state(ORG) == "ok"


async def test_the_periodic_job_refreshes_what_is_due(h: Harness) -> None:
    await h.connect()
    assert await h.tokens.refresh_due() == {}
    h.clock.advance(h.state.access_token_ttl_s - 100)
    assert await h.tokens.refresh_due() == {ORG: "refreshed"}
    assert await h.tokens.refresh_due() == {}
    assert h.tokens.state("org-unknown") == "none"
    with pytest.raises(ReauthoriseError):
        await h.tokens.access_token("org-unknown")


async def test_tokens_never_appear_in_the_logs(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = await h.connect()
    h.clock.advance(h.state.access_token_ttl_s)
    fresh = await h.tokens.access_token(ORG)
    await h.sandbox("POST", "/_sandbox/tokens/revoke")
    h.clock.advance(h.state.access_token_ttl_s)
    with pytest.raises(ReauthoriseError) as refused:
        await h.tokens.access_token(ORG)
    secrets = {tokens.access_token, tokens.refresh_token, fresh, *h.state.refresh_tokens}
    secrets |= set(h.state.access_tokens) | {tokens.id_token}
    assert len(caplog.records) > 3  # the flow did log: org ids and outcomes
    text = (
        "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        + str(refused.value)
        + repr(tokens)
    )
    for secret in secrets:
        assert secret and secret not in text
