"""A payment's way through the bridge, over real HTTP, against the simulated POS."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3

import pytest

from bridge.app import create_app
from bridge.config import parse_config
from bridge.core.bill import bill_from_dict
from bridge.runtime import RUNTIME
from tests.conftest import (
    ADMIN_AUTH,
    LOKE_AUTH,
    config_data,
    fetch_bill,
    loke_url,
    make_config,
    payment_body,
    set_mode,
)


def pos_payments(client, location="1"):
    return client.app[RUNTIME].drivers["main"].payments(location)


async def pay(client, table, body):
    response = await client.post(loke_url(table, "payments"), headers=LOKE_AUTH, json=body)
    return response.status, await response.json(), response


async def eventually(predicate, timeout=5.0):
    """Poll ``predicate`` (an async callable) until true; bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def status(client):
    response = await client.get("/api/status", headers=ADMIN_AUTH)
    assert response.status == 200
    return await response.json()


async def payment_state(client, payment_id):
    response = await client.get(f"/api/payments/loke/{payment_id}", headers=ADMIN_AUTH)
    return (await response.json())["payment"]["state"]


async def test_split_bill_partial_payments_then_the_rest_closes_it(client):
    bill = await fetch_bill(client, 1)
    first = bill["balance"] // 3
    code, body, _ = await pay(client, 1, payment_body(bill, "split-1", first, tip=100))
    assert code == 201 and body["balance"] == bill["balance"] - first
    code, body, _ = await pay(client, 1, payment_body(bill, "split-2", bill["balance"] - first))
    assert code == 201 and body["balance"] == 0 and body["billClosed"] is True
    assert [(p[0], p[2], p[3]) for p in pos_payments(client)] == [
        ("split-1", first, 100),
        ("split-2", bill["balance"] - first, 0),
    ]
    after = await client.get(loke_url(1), headers=LOKE_AUTH)
    assert (after.status, (await after.json())["error"]) == (404, "no_open_bill")


async def test_concurrent_payers_on_one_bill_never_overpay_it(client):
    bill = await fetch_bill(client, 2)
    share = bill["balance"] // 4 + 1  # five guests each try a bit more than a quarter
    results = await asyncio.gather(
        *(pay(client, 2, payment_body(bill, f"race-{i}", share)) for i in range(5))
    )
    accepted = [r for r in results if r[0] == 201]
    refused = [r for r in results if r[0] != 201]
    assert len(accepted) == 3
    assert {(r[0], r[1]["error"]) for r in refused} == {(422, "amount_exceeds_balance")}
    assert sum(p[2] for p in pos_payments(client)) == 3 * share <= bill["balance"]


async def test_items_added_since_the_fetch_make_the_payment_a_conflict(client):
    bill = await fetch_bill(client, 3)
    added = await client.post(
        "/api/drivers/main/simulator/tables/3/items",
        headers=ADMIN_AUTH,
        json={"name": "Chips", "amount": 900},
    )
    assert added.status == 200
    code, body, _ = await pay(client, 3, payment_body(bill, "stale", 100))
    assert (code, body["error"]) == (409, "bill_changed")
    fresh = await fetch_bill(client, 3)
    code, _, _ = await pay(client, 3, payment_body(fresh, "fresh", 100))
    assert code == 201
    assert [p[0] for p in pos_payments(client)] == ["fresh"]


async def test_a_closed_bill_and_a_new_bill_on_the_table(client):
    bill = await fetch_bill(client, 4)
    assert (await pay(client, 4, payment_body(bill, "close-it", bill["balance"])))[0] == 201
    code, body, _ = await pay(client, 4, payment_body(bill, "late", 1))
    assert (code, body["error"]) == (409, "bill_closed")
    seated = await client.post("/api/drivers/main/simulator/tables/4/bill", headers=ADMIN_AUTH)
    assert seated.status == 200
    code, body, _ = await pay(client, 4, payment_body(bill, "later", 1))
    assert (code, body["error"]) == (409, "bill_changed")
    assert body["details"]["currentBillRef"] == (await seated.json())["id"]


@pytest.mark.parametrize(
    ("table", "change", "error"),
    [
        (5, {"currency": "NZD"}, "currency_mismatch"),
        (7, {"tip": 100}, "tips_not_allowed"),  # the simulator's table 7 takes no tips
        (5, {"amount": 10**8}, "amount_exceeds_balance"),
    ],
)
async def test_rule_breaking_payments_get_422_and_are_never_applied(client, table, change, error):
    bill = await fetch_bill(client, table)
    assert bill["tipsAllowed"] is (table != 7)
    body = {**payment_body(bill, f"bad-{error}", 100), **change}
    code, answer, _ = await pay(client, table, body)
    assert (code, answer["error"]) == (422, error)
    assert pos_payments(client) == []
    # the refusal is stored: the same request gets the same answer
    again, answer_again, response = await pay(client, table, body)
    assert (again, answer_again) == (422, answer)
    assert response.headers["Idempotent-Replayed"] == "true"


async def test_same_id_same_body_replays_and_other_body_is_refused(client):
    bill = await fetch_bill(client, 6)
    body = payment_body(bill, "idem-1", 250)
    first = await pay(client, 6, body)
    second = await pay(client, 6, dict(reversed(list(body.items()))))  # same meaning
    assert first[0] == second[0] == 201 and first[1] == second[1]
    assert second[2].headers.get("Idempotent-Replayed") == "true"
    code, answer, _ = await pay(client, 6, {**body, "amount": 251})
    assert (code, answer["error"]) == (422, "idempotency_key_reused")
    assert [p[0] for p in pos_payments(client)] == ["idem-1"]


async def test_same_id_while_the_first_is_in_flight_gets_409_in_progress(client):
    bill = await fetch_bill(client, 8)
    await client.post(
        "/api/drivers/main/simulator", headers=ADMIN_AUTH, json={"mode": "online", "latencyMs": 300}
    )
    body = payment_body(bill, "slow-1", 100)
    first = asyncio.create_task(pay(client, 8, body))
    await asyncio.sleep(0.1)
    code, answer, response = await pay(client, 8, body)
    assert (code, answer["error"]) == (409, "in_progress")
    assert response.headers["Retry-After"] == "1"
    assert (await first)[0] == 201
    assert [p[0] for p in pos_payments(client)] == ["slow-1"]


async def test_offline_payment_is_queued_then_applied_once_when_the_pos_returns(client):
    bill = await fetch_bill(client, 9)
    await set_mode(client, "offline")
    code, body, _ = await pay(client, 9, payment_body(bill, "off-1", 300, tip=20))
    assert (code, body["status"]) == (202, "queued")
    snapshot = await status(client)
    assert snapshot["posOnline"] is False and snapshot["queue"]["depth"] == 1
    assert snapshot["queue"]["oldestQueuedAgeSeconds"] >= 0
    assert pos_payments(client) == []
    await set_mode(client, "online")

    async def applied():
        return await payment_state(client, "off-1") == "applied"

    await eventually(applied)
    assert [(p[0], p[2], p[3]) for p in pos_payments(client)] == [("off-1", 300, 20)]
    assert (await status(client))["queue"]["depth"] == 0
    trail = await (await client.get("/api/payments/loke/off-1", headers=ADMIN_AUTH)).json()
    assert [step["to"] for step in trail["audit"]] == ["received", "queued", "applying", "applied"]
    # a replay still gets the answer it got first
    code, again, _ = await pay(client, 9, payment_body(bill, "off-1", 300, tip=20))
    assert (code, again) == (202, body)


async def test_offline_payments_are_checked_against_the_last_bill_seen(client):
    bill = await fetch_bill(client, 10)
    await set_mode(client, "offline")
    half = bill["balance"] // 2
    assert (await pay(client, 10, payment_body(bill, "q-1", half)))[0] == 202
    code, body, _ = await pay(client, 10, payment_body(bill, "q-2", bill["balance"] - half + 1))
    assert (code, body["error"]) == (422, "amount_exceeds_balance")
    assert (await pay(client, 10, payment_body(bill, "q-3", bill["balance"] - half)))[0] == 202


async def test_offline_with_no_copy_of_the_bill_is_503_and_not_recorded(client):
    await set_mode(client, "offline")
    body = {
        "paymentId": "blind",
        "billRef": "1-T011-00011",
        "billVersion": "x",
        "currency": "AUD",
        "amount": 100,
    }
    response = await client.post(loke_url(11, "payments"), headers=LOKE_AUTH, json=body)
    assert response.status == 503 and response.headers["Retry-After"]
    assert (await response.json())["error"] == "pos_offline"
    assert await client.app[RUNTIME].store.get_payment("loke", "blind") is None


@pytest.mark.parametrize("mode", ["offline", "failing"])
async def test_fetch_while_pos_unreachable_is_503_with_retry_after(client, mode):
    await set_mode(client, mode)
    response = await client.get(loke_url(1), headers=LOKE_AUTH)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert (await response.json())["error"] == "pos_offline"


async def test_lost_confirmation_is_reconciled_not_applied_twice(client):
    bill = await fetch_bill(client, 12)
    await set_mode(client, "lossy")  # the POS applies it, then the answer is lost
    code, body, _ = await pay(client, 12, payment_body(bill, "lost-1", 400))
    assert (code, body["status"]) == (202, "queued")
    await set_mode(client, "online")

    async def applied():
        return await payment_state(client, "lost-1") == "applied"

    await eventually(applied)
    assert [p[0] for p in pos_payments(client)] == ["lost-1"]
    trail = await (await client.get("/api/payments/loke/lost-1", headers=ADMIN_AUTH)).json()
    assert "found on the POS" in trail["audit"][-1]["reason"]


async def test_refused_later_by_the_pos_needs_attention_and_stays_visible(client):
    bill = await fetch_bill(client, 1)
    await set_mode(client, "offline")
    assert (await pay(client, 1, payment_body(bill, "too-late", 500)))[0] == 202
    till = await client.post(
        "/api/drivers/main/simulator/tables/1/till-payments",
        headers=ADMIN_AUTH,
        json={"amount": bill["balance"]},
    )
    assert till.status == 200 and (await till.json())["balance"] == 0
    await set_mode(client, "online")

    async def flagged():
        return (await status(client))["needsAttention"] == 1

    await eventually(flagged)
    listed = await client.get("/api/payments?state=needs_attention", headers=ADMIN_AUTH)
    assert [p["paymentId"] for p in (await listed.json())["payments"]] == ["too-late"]
    assert pos_payments(client) == []

    # The manager reopens the bill at the till; the technician sends the payment back.
    seated = await client.post("/api/drivers/main/simulator/tables/1/bill", headers=ADMIN_AUTH)
    assert seated.status == 200
    retry = await client.post(
        "/api/payments/loke/too-late/retry", headers=ADMIN_AUTH, json={"reason": "bill reopened"}
    )
    assert (retry.status, (await retry.json())["state"]) == (200, "queued")
    # still refused (it names the old, closed bill): back to needs attention, never applied
    await eventually(flagged)
    trail = await (await client.get("/api/payments/loke/too-late", headers=ADMIN_AUTH)).json()
    reasons = [step["reason"] for step in trail["audit"]]
    assert "retried by a technician: bill reopened" in reasons
    assert [s["to"] for s in trail["audit"]][-3:] == ["queued", "applying", "needs_attention"]
    assert pos_payments(client) == []
    again = await client.post("/api/payments/loke/p-unknown/retry", headers=ADMIN_AUTH)
    assert again.status == 404


async def test_only_a_payment_needing_attention_can_be_retried(client):
    bill = await fetch_bill(client, 2)
    await pay(client, 2, payment_body(bill, "fine", 100))
    response = await client.post("/api/payments/loke/fine/retry", headers=ADMIN_AUTH)
    body = await response.json()
    assert (response.status, body["error"], body["details"]["state"]) == (
        409,
        "not_needs_attention",
        "applied",
    )


async def test_offline_limit_refuses_with_409_and_records_nothing(aiohttp_client, tmp_path):
    data = config_data(tmp_path, payments={"offline_limits": {"max_payment_minor": 200}})
    client = await aiohttp_client(create_app(parse_config(copy.deepcopy(data), {})))
    bill = await fetch_bill(client, 2)
    await set_mode(client, "offline")
    code, body, _ = await pay(client, 2, payment_body(bill, "big", 201))
    assert (code, body["error"], body["details"]["limit"]) == (409, "offline_limit", "max_payment")
    assert await client.app[RUNTIME].store.get_payment("loke", "big") is None
    assert (await pay(client, 2, payment_body(bill, "small", 200)))[0] == 202


async def test_a_replay_gets_its_answer_where_a_new_payment_would_be_refused_unrecorded(
    aiohttp_client, tmp_path
):
    """The insert is the check (``services/payments.py``); each refusal that comes before any
    record must still look the id up, or a replay would get that refusal instead."""
    data = config_data(tmp_path, payments={"offline_limits": {"max_count": 1}})
    client = await aiohttp_client(create_app(parse_config(copy.deepcopy(data), {})))
    bill = await fetch_bill(client, 2)
    applied = await pay(client, 2, payment_body(bill, "applied-1", 100))
    assert applied[0] == 201
    await set_mode(client, "offline")
    queued = await pay(client, 2, payment_body(bill, "queued-1", 100))
    assert queued[0] == 202
    # the offline limit (one queued payment) is full: a new payment is refused, a replay not
    code, body, _ = await pay(client, 2, payment_body(bill, "queued-2", 100))
    assert (code, body["error"]) == (409, "offline_limit")
    assert (await pay(client, 2, payment_body(bill, "queued-1", 100)))[:2] == queued[:2]
    # no copy of the bill to check against (a restarted bridge, its snapshots gone): 503 for
    # a new payment, the stored answer for a replay
    await client.close()
    client = await aiohttp_client(create_app(parse_config(copy.deepcopy(data), {})))
    await client.app[RUNTIME].store.db.write(lambda c: c.execute("DELETE FROM bill_snapshots"))
    await set_mode(client, "offline")
    code, body, _ = await pay(client, 2, payment_body(bill, "new-offline", 100))
    assert (code, body["error"]) == (503, "pos_offline")
    assert (await pay(client, 2, payment_body(bill, "applied-1", 100)))[:2] == applied[:2]
    await set_mode(client, "online")
    # an unknown table: 404 for a new id; the same id on another table is a reused key
    code, body, _ = await pay(client, 999999, payment_body(bill, "nowhere-1", 100))
    assert (code, body["error"]) == (404, "unknown_table")
    code, body, _ = await pay(client, 999999, payment_body(bill, "applied-1", 100))
    assert (code, body["error"]) == (422, "idempotency_key_reused")


async def test_payment_status_url_follows_the_payment(client):
    bill = await fetch_bill(client, 3)
    await pay(client, 3, payment_body(bill, "st-1", 100))
    response = await client.get("/loke/v1/locations/loc-main/payments/st-1", headers=LOKE_AUTH)
    body = await response.json()
    assert (response.status, body["state"], body["amount"]) == (200, "applied", 100)
    missing = await client.get("/loke/v1/locations/loc-main/payments/nope", headers=LOKE_AUTH)
    assert (missing.status, (await missing.json())["error"]) == (404, "unknown_payment")


async def test_tables_are_published(client):
    response = await client.get("/loke/v1/locations/loc-main/tables", headers=LOKE_AUTH)
    body = await response.json()
    assert [t["number"] for t in body["tables"]] == list(range(1, 13))


async def test_unknown_table_is_404(client):
    response = await client.get(loke_url(99), headers=LOKE_AUTH)
    assert (response.status, (await response.json())["error"]) == (404, "unknown_table")


def test_a_payment_the_pos_took_but_did_not_confirm_is_not_counted_twice():
    from bridge.core.money import Money
    from bridge.services.payments import not_yet_on
    from tests.core.factories import a_bill, paid

    bill = paid(a_bill(), 1000, ref="landed")  # the POS took it; its answer was lost
    pending = {"landed": 1000, "waiting": 300}
    assert not_yet_on(bill, pending, "AUD") == Money(300, "AUD")
    assert not_yet_on(None, pending, "AUD") == Money(1300, "AUD")


async def test_offline_check_counts_payments_whose_snapshot_waits_in_memory(client):
    bill = await fetch_bill(client, 9)
    paid = bill["balance"] // 2
    assert (await pay(client, 9, payment_body(bill, "on-1", paid)))[0] == 201
    runtime = client.app[RUNTIME]
    stored = await runtime.store.bill_snapshot("loc-main", 9)
    assert stored is not None and stored[0].balance.minor == bill["balance"]  # write deferred
    await set_mode(client, "offline")
    left = bill["balance"] - paid
    code, body, _ = await pay(client, 9, payment_body(bill, "off-1", left + 1))
    assert (code, body["error"]) == (422, "amount_exceeds_balance")
    assert (await pay(client, 9, payment_body(bill, "off-2", left)))[0] == 202


async def test_offline_check_after_a_restart_counts_payments_applied_since_the_snapshot(
    aiohttp_client, tmp_path
):
    # What a crash loses: the bills kept in memory. The first bridge is never stopped (its
    # memory never reaches the file); a second one on the same data folder and POS state
    # file is the restarted process.
    config = make_config(tmp_path, drivers={"main": {"url": f"simulator://{tmp_path}/pos.db"}})
    first = await aiohttp_client(create_app(config))
    bill = await fetch_bill(first, 6)
    paid = bill["balance"] // 3
    assert (await pay(first, 6, payment_body(bill, "before-crash", paid)))[0] == 201
    stored = await first.app[RUNTIME].store.bill_snapshot("loc-main", 6)
    assert stored is not None and stored[0].balance.minor == bill["balance"]  # write deferred

    second = await aiohttp_client(create_app(config))
    await set_mode(second, "offline")
    left = bill["balance"] - paid
    code, body, _ = await pay(second, 6, payment_body(bill, "after-1", left + 1))
    assert (code, body["error"]) == (422, "amount_exceeds_balance")
    assert (await pay(second, 6, payment_body(bill, "after-2", left)))[0] == 202


async def test_kept_snapshots_reach_the_file_when_the_bridge_stops(aiohttp_client, tmp_path):
    config = make_config(tmp_path)
    client = await aiohttp_client(create_app(config))
    bill = await fetch_bill(client, 3)
    assert (await pay(client, 3, payment_body(bill, "kept", 100)))[0] == 201
    store = client.app[RUNTIME].store
    assert (await store.bill_snapshot("loc-main", 3))[0].balance.minor == bill["balance"]
    await client.close()  # a clean stop: the kept bill is written
    with contextlib.closing(sqlite3.connect(config.database_path)) as conn:
        (data,) = conn.execute(
            "SELECT data FROM bill_snapshots WHERE location_id = 'loc-main' AND table_no = 3"
        ).fetchone()
    assert bill_from_dict(json.loads(data)).balance.minor == bill["balance"] - 100
