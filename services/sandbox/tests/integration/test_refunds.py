"""Refund rules of the provider, and the charge.refunded webhook that follows a refund."""

from __future__ import annotations

from waybill.devstack.testing import eventually


async def _succeeded_intent(api, amount: int = 2500) -> dict:
    response = await api.create_intent(api.intent_body("pm_card_ok", amount=amount))
    assert response.status_code == 200, response.text
    return response.json()


async def test_partial_then_remaining_refund_add_up_to_the_amount(api, receiver):
    intent = await _succeeded_intent(api, amount=1000)
    partial = await api.refund({"payment_intent": intent["id"], "amount": 300})
    assert partial.status_code == 200, partial.text
    refund = partial.json()
    assert refund["id"].startswith("re_") and refund["object"] == "refund"
    assert (refund["amount"], refund["status"]) == (300, "succeeded")
    rest = await api.refund({"payment_intent": intent["id"]})
    assert rest.status_code == 200
    assert rest.json()["amount"] == 700
    current = (await api.http.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert current["amount_refunded"] == 1000
    ledger = await api.ledger(intent["metadata"]["order_id"])
    assert sorted(r["amount"] for r in ledger["refunds"]) == [300, 700]

    async def both_announced():
        events = [r.event for r in receiver.for_intent(intent["id"])]
        return len(events) == 2 and events

    events = await eventually(both_announced, what="two charge.refunded webhooks")
    assert {e["type"] for e in events} == {"charge.refunded"}
    assert len({e["id"] for e in events}) == 2  # a unique event id each


async def test_refund_beyond_the_remaining_amount_is_amount_too_large(api):
    intent = await _succeeded_intent(api, amount=500)
    response = await api.refund({"payment_intent": intent["id"], "amount": 501})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_too_large"
    assert (await api.ledger(intent["metadata"]["order_id"]))["refunds"] == []


async def test_refund_of_a_processing_intent_is_charge_not_captured(api):
    response = await api.create_intent(api.intent_body("pm_card_async_silent"))
    intent = response.json()
    refund = await api.refund({"payment_intent": intent["id"]})
    assert refund.status_code == 400
    assert refund.json()["error"]["code"] == "charge_not_captured"


async def test_refund_of_a_declined_intent_is_charge_not_captured(api):
    declined = (await api.create_intent(api.intent_body("pm_card_declined"))).json()
    intent_id = declined["error"]["payment_intent"]["id"]
    refund = await api.refund({"payment_intent": intent_id})
    assert refund.status_code == 400
    assert refund.json()["error"]["code"] == "charge_not_captured"


async def test_refund_of_an_unknown_intent_is_404(api):
    response = await api.refund({"payment_intent": "pi_missing"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


async def test_a_fully_refunded_intent_cannot_be_refunded_again(api):
    intent = await _succeeded_intent(api)
    assert (await api.refund({"payment_intent": intent["id"]})).status_code == 200
    again = await api.refund({"payment_intent": intent["id"]})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "charge_already_refunded"


async def test_refund_retried_with_its_key_refunds_once(api):
    intent = await _succeeded_intent(api, amount=800)
    key = api.new_key()
    first = await api.refund({"payment_intent": intent["id"], "amount": 200}, key)
    second = await api.refund({"payment_intent": intent["id"], "amount": 200}, key)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    ledger = await api.ledger(intent["metadata"]["order_id"])
    assert [r["amount"] for r in ledger["refunds"]] == [200]
