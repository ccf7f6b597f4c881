from tests.conftest import LOKE_AUTH, fetch_bill, loke_url, payment_body


async def test_pay_whole_bill_closes_it(client):
    bill = await fetch_bill(client, 3)
    response = await client.post(
        loke_url(3, "payments"), headers=LOKE_AUTH, json=payment_body(bill, "p-1", bill["balance"])
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["balance"] == 0 and body["billClosed"] is True
    again = await client.get(loke_url(3), headers=LOKE_AUTH)
    assert again.status == 404
    assert (await again.json())["error"] == "no_open_bill"
