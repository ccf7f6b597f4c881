"""A payment that needs attention, settled by a technician's hand (``resolved``)."""

from __future__ import annotations

from bridge.runtime import RUNTIME
from tests.conftest import ADMIN_AUTH, fetch_bill, payment_body, set_mode
from tests.services.test_payment_flow import eventually, pay, pos_payments, status


async def test_a_technician_resolves_a_payment_that_needs_attention_by_hand(client):
    bill = await fetch_bill(client, 1)
    await set_mode(client, "offline")
    assert (await pay(client, 1, payment_body(bill, "by-hand", 500)))[0] == 202
    till = await client.post(
        "/api/drivers/main/simulator/tables/1/till-payments",
        headers=ADMIN_AUTH,
        json={"amount": bill["balance"]},
    )
    assert till.status == 200
    await set_mode(client, "online")

    async def flagged():
        return (await status(client))["needsAttention"] == 1

    await eventually(flagged)
    runtime = client.app[RUNTIME]
    payment = await runtime.store.get_payment("loke", "by-hand")
    # The HTTP route comes with issue 17; the service's event is here now.
    resolved = await runtime.outbox.resolve_by_hand(payment, "sam", "keyed in at the till")
    assert resolved.state.value == "resolved"
    stored = await runtime.store.get_payment("loke", "by-hand")
    assert stored is not None and stored.state.value == "resolved"
    assert (await status(client))["needsAttention"] == 0
    trail = await (await client.get("/api/payments/loke/by-hand", headers=ADMIN_AUTH)).json()
    assert trail["audit"][-1] == {
        **trail["audit"][-1],
        "from": "needs_attention",
        "to": "resolved",
        "reason": "resolved by hand by sam: keyed in at the till",
    }
    # final: a technician cannot send it back to the POS any more
    retry = await client.post("/api/payments/loke/by-hand/retry", headers=ADMIN_AUTH, json={})
    assert retry.status == 409
    assert pos_payments(client) == []
