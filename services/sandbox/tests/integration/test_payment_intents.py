"""The four payment-method tokens and Idempotency-Key, against the sandbox process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx

from waybill.devstack.testing import ServiceProcess, eventually

WEBHOOK_SECRET = "whsec_sandbox_tests"  # noqa: S105 - the one conftest gives the sandbox


async def test_card_ok_succeeds_at_once_and_is_charged_once(api):
    body = api.intent_body("pm_card_ok")
    response = await api.create_intent(body)
    assert response.status_code == 200, response.text
    intent = response.json()
    assert intent["id"].startswith("pi_")
    assert intent["status"] == "succeeded"
    assert intent["currency"] == "usd"
    assert intent["amount"] == 2500 and intent["amount_refunded"] == 0
    assert intent["last_payment_error"] is None
    charges = await api.charges(body["metadata"]["order_id"])
    assert [c["payment_intent"] for c in charges] == [intent["id"]]


async def test_card_declined_answers_402_and_charges_nothing(api):
    body = api.intent_body("pm_card_declined")
    response = await api.create_intent(body)
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("card_error", "card_declined")
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["last_payment_error"]["code"] == "card_declined"
    assert await api.charges(body["metadata"]["order_id"]) == []


async def test_card_async_settles_later_and_sends_a_signed_webhook(api, receiver):
    body = api.intent_body("pm_card_async")
    response = await api.create_intent(body)
    assert response.status_code == 200
    intent = response.json()
    assert intent["status"] == "processing"
    assert len(await api.charges(body["metadata"]["order_id"])) == 1

    async def delivered():
        return receiver.for_intent(intent["id"])

    (received,) = await eventually(delivered, what="the succeeded webhook")
    event = received.event
    assert event["id"].startswith("evt_")
    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["status"] == "succeeded"
    parts = dict(p.split("=", 1) for p in received.headers["provider-signature"].split(","))
    signed = f"{parts['t']}.".encode() + received.body
    expected = hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert await api.status(intent["id"]) == "succeeded"


async def test_card_async_silent_settles_without_any_webhook(api, receiver):
    body = api.intent_body("pm_card_async_silent")
    intent = (await api.create_intent(body)).json()
    assert intent["status"] == "processing"

    async def settled():
        return await api.status(intent["id"]) == "succeeded"

    await eventually(settled, what="silent settlement")
    # Settlement and event creation share one transaction: no event now means none ever.
    assert await api.webhook_events(intent["id"]) == []
    assert receiver.for_intent(intent["id"]) == []


async def test_unknown_payment_method_is_rejected_with_400(api):
    response = await api.create_intent(api.intent_body("pm_card_bogus"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payment_method_invalid"


async def test_invalid_body_or_missing_key_is_a_provider_400(api):
    bad = await api.create_intent(api.intent_body(amount=0))
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    no_key = await api.http.post("/v1/payment_intents", json=api.intent_body())
    assert no_key.status_code == 400
    assert no_key.json()["error"]["code"] == "parameter_missing"


async def test_wrong_or_missing_api_key_is_401(api, sandbox: ServiceProcess):
    async with httpx.AsyncClient(base_url=sandbox.url) as anonymous:
        response = await anonymous.get("/v1/payment_intents/pi_x")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "api_key_invalid"
        wrong = await anonymous.get(
            "/v1/payment_intents/pi_x", headers={"Authorization": "Bearer sk_wrong"}
        )
        assert wrong.status_code == 401


async def test_unknown_intent_is_404_resource_missing(api):
    response = await api.http.get("/v1/payment_intents/pi_doesnotexist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


async def test_same_key_and_body_replay_the_answer_without_a_second_charge(api):
    body, key = api.intent_body(), api.new_key()
    first = await api.create_intent(body, key)
    second = await api.create_intent(body, key)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(await api.charges(body["metadata"]["order_id"])) == 1


async def test_declined_answer_is_replayed_for_the_same_key(api):
    body, key = api.intent_body("pm_card_declined"), api.new_key()
    first = await api.create_intent(body, key)
    second = await api.create_intent(body, key)
    assert first.status_code == second.status_code == 402
    assert first.json() == second.json()


async def test_same_key_with_another_body_is_idempotency_key_reused(api):
    body, key = api.intent_body(), api.new_key()
    assert (await api.create_intent(body, key)).status_code == 200
    other = await api.create_intent({**body, "amount": 9999}, key)
    assert other.status_code == 400
    error = other.json()["error"]
    assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_key_reused")
    assert len(await api.charges(body["metadata"]["order_id"])) == 1


async def test_ten_concurrent_requests_with_one_key_charge_once(api):
    body, key = api.intent_body(), api.new_key()
    responses = await asyncio.gather(*(api.create_intent(body, key) for _ in range(10)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await api.charges(body["metadata"]["order_id"])) == 1
