"""What a restart finds: payments a killed process left applying or unanswered.

The crash test (tests/test_crash.py) kills a real process; this checks the recovery steps one
by one, on a real database file, by building the bridge twice on the same data folder.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bridge.app import create_app
from bridge.core.lifecycle import decide
from bridge.core.money import Money
from bridge.core.payment import PaymentState, receive
from bridge.core.payment_events import CheckedOk
from bridge.platforms.loke.contract import parse_payment
from bridge.runtime import RUNTIME
from tests.conftest import LOKE_AUTH, fetch_bill, loke_url, make_config, payment_body


async def test_a_payment_left_applying_is_answered_queued_and_applied_once(
    aiohttp_client, tmp_path
):
    # the simulated POS keeps its state in a file: it outlives the bridge, as a real one does
    config = make_config(tmp_path, drivers={"main": {"url": f"simulator://{tmp_path}/pos.db"}})
    first = await aiohttp_client(create_app(config))
    bill = await fetch_bill(first, 5)
    body = payment_body(bill, "stranded", 300)
    runtime = first.app[RUNTIME]
    # What a process killed between its durable write and the POS call leaves behind:
    # the payment in "applying", claimed, with no stored answer.
    payment, received = receive(
        payment_id="stranded",
        platform="loke",
        location_id="loc-main",
        table=5,
        bill_ref=bill["id"],
        bill_version=bill["version"],
        amount=Money(300, "AUD"),
        tip=Money(0, "AUD"),
        label="LOKE Pay at Table",
        now=runtime.clock(),
    )
    decided = decide(payment, CheckedOk(pos_online=True), runtime.clock())
    applying, (audit,) = decided.payment, decided.audits
    fingerprint = parse_payment(body, "loc-main", 5).fingerprint
    await runtime.store.record_payment(
        applying,
        [received, audit],
        fingerprint,
        response=None,
        outbox_at=runtime.clock(),
        claimed=True,
        now=runtime.clock(),
    )
    await first.close()

    second = await aiohttp_client(create_app(config))
    response = await second.post(loke_url(5, "payments"), headers=LOKE_AUTH, json=body)
    assert response.status == 202, await response.text()
    assert (await response.json())["status"] == "queued"
    runtime = second.app[RUNTIME]
    for _ in range(200):  # the outbox worker runs in the background; bounded wait
        applied = await runtime.store.get_payment("loke", "stranded")
        if applied.state is PaymentState.APPLIED:
            break
        await asyncio.sleep(0.02)
    assert applied.state is PaymentState.APPLIED
    assert [p[0] for p in runtime.drivers["main"].payments("1")] == ["stranded"]
    trail = [
        (a.from_state, a.to_state) for a in await runtime.store.audit_trail("loke", "stranded")
    ]
    assert trail[-3:] == [
        (PaymentState.APPLYING, PaymentState.QUEUED),
        (PaymentState.QUEUED, PaymentState.APPLYING),
        (PaymentState.APPLYING, PaymentState.APPLIED),
    ]


async def test_a_payment_id_whose_record_was_pruned_is_not_taken_again(client):
    bill = await fetch_bill(client, 2)
    body = payment_body(bill, "old-1", 100)
    assert (await client.post(loke_url(2, "payments"), headers=LOKE_AUTH, json=body)).status == 201
    runtime = client.app[RUNTIME]
    later = runtime.clock() + timedelta(days=400)
    assert await runtime.store.prune_idempotency(later) == 1
    again = await client.post(loke_url(2, "payments"), headers=LOKE_AUTH, json=body)
    assert (again.status, (await again.json())["error"]) == (422, "idempotency_key_expired")
    assert [p[0] for p in runtime.drivers["main"].payments("1")] == ["old-1"]


async def test_a_payment_left_applying_in_process_is_adopted_by_the_outbox_once_stale(client):
    # The online path writes no outbox row: if it dies in-process after its durable write
    # (its task gone, its last write failed), the payment sits in "applying" with no row.
    bill = await fetch_bill(client, 6)
    runtime = client.app[RUNTIME]
    now = runtime.clock()
    payment, received = receive(
        payment_id="orphan",
        platform="loke",
        location_id="loc-main",
        table=6,
        bill_ref=bill["id"],
        bill_version=bill["version"],
        amount=Money(200, "AUD"),
        tip=Money(0, "AUD"),
        label="LOKE Pay at Table",
        now=now,
    )
    decided = decide(payment, CheckedOk(pos_online=True), now)
    applying, (audit,) = decided.payment, decided.audits
    body = payment_body(bill, "orphan", 200)
    fingerprint = parse_payment(body, "loc-main", 6).fingerprint
    await runtime.store.record_payment(
        applying,
        [received, audit],
        fingerprint,
        response=None,
        outbox_at=None,
        claimed=False,
        now=now,
    )
    # not yet stale: left alone (its request may still be applying it)
    assert await runtime.store.claim_next(now, stale_before=now) is None
    claim = await runtime.store.claim_next(now, stale_before=now + timedelta(seconds=1))
    assert claim is not None and claim.payment.id == "orphan"
    assert claim.payment.state is PaymentState.APPLYING
    await runtime.outbox.process(claim)
    applied = await runtime.store.get_payment("loke", "orphan")
    assert applied is not None and applied.state is PaymentState.APPLIED
    assert [p[0] for p in runtime.drivers["main"].payments("1")] == ["orphan"]
    replay = await client.post(loke_url(6, "payments"), headers=LOKE_AUTH, json=body)
    assert replay.status == 202  # the waiting platform was answered "queued" on adoption


async def test_pruning_forgets_every_old_answer_in_chunks(client, monkeypatch):
    monkeypatch.setattr("bridge.store.payments.PRUNE_CHUNK", 2)
    bill = await fetch_bill(client, 3)
    for n in range(5):
        body = payment_body(bill, f"chunk-{n}", 10)
        response = await client.post(loke_url(3, "payments"), headers=LOKE_AUTH, json=body)
        assert response.status == 201
    runtime = client.app[RUNTIME]
    later = runtime.clock() + timedelta(days=400)
    assert await runtime.store.prune_idempotency(later) == 5
    assert await runtime.store.prune_idempotency(later) == 0
    assert runtime.store.idempotency("loke", "chunk-4").expired
