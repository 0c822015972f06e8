"""The SMS provider: send and list, idempotent retries, and its own fault knobs."""

from __future__ import annotations

import random
import time


def new_number() -> str:
    return f"+1555{random.randrange(10**7):07d}"  # a fresh recipient per test


async def send_sms(api, to: str, body: str = "Your order shipped", key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return await api.http.post("/v1/messages", json={"to": to, "body": body}, headers=headers)


async def sent_to(api, to: str, **params) -> list[dict]:
    response = await api.http.get("/sms", params={"to": to, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_sent_sms_is_queued_and_listed(api):
    to = new_number()
    response = await send_sms(api, to, "Code 123456")
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["id"].startswith("sms_")
    assert (message["to"], message["status"]) == (to, "queued")
    (listed,) = await sent_to(api, to)
    assert listed == message
    assert listed["body"] == "Code 123456"


async def test_sms_list_is_newest_last_with_a_limit(api):
    to = new_number()
    ids = [(await send_sms(api, to, f"message {n}")).json()["id"] for n in range(3)]
    assert [m["id"] for m in await sent_to(api, to)] == ids
    assert [m["id"] for m in await sent_to(api, to, limit=2)] == ids[1:]


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_message(api):
    to, key = new_number(), api.new_key()
    first = await send_sms(api, to, key=key)
    retry = await send_sms(api, to, key=key)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert len(await sent_to(api, to)) == 1
    # The same key for another message is refused, and stores nothing either.
    other = await send_sms(api, to, body="something else", key=key)
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await sent_to(api, to)) == 1


async def test_without_a_key_every_send_is_a_new_message(api):
    to = new_number()
    await send_sms(api, to)
    await send_sms(api, to)
    assert len(await sent_to(api, to)) == 2


async def test_rate_limit_knob_answers_429_with_retry_after_and_sends_nothing(api):
    await api.set_faults(sms_rate_limit_rate=1.0, sms_retry_after_s=3)
    to = new_number()
    response = await send_sms(api, to, key=api.new_key())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert await sent_to(api, to) == []


async def test_error_knob_answers_500_and_sends_nothing(api):
    await api.set_faults(sms_error_rate=1.0)
    to, key = new_number(), api.new_key()
    response = await send_sms(api, to, key=key)
    assert response.status_code == 500
    assert await sent_to(api, to) == []
    # The key stayed free: the retry after the outage sends the message.
    await api.http.post("/admin/faults/reset")
    assert (await send_sms(api, to, key=key)).status_code == 201
    assert len(await sent_to(api, to)) == 1


async def test_counted_sms_faults_fail_the_next_requests_then_send(api):
    await api.set_faults(sms_fail_next=1)
    to = new_number()
    assert (await send_sms(api, to)).status_code == 500
    assert (await send_sms(api, to)).status_code == 201
    assert len(await sent_to(api, to)) == 1


async def test_sms_latency_knob_delays_the_answer(api):
    await api.set_faults(sms_latency_ms=300)
    started = time.monotonic()
    assert (await send_sms(api, new_number())).status_code == 201
    assert time.monotonic() - started >= 0.3


async def test_payment_faults_and_sms_faults_do_not_touch_each_other(api):
    await api.set_faults(error_rate=1.0, rate_limit_rate=0.0)
    assert (await send_sms(api, new_number())).status_code == 201
    await api.http.post("/admin/faults/reset")
    await api.set_faults(sms_error_rate=1.0)
    assert (await api.create_intent(api.intent_body())).status_code == 200


async def test_bad_messages_are_refused_with_the_provider_error_shape(api):
    for body in (
        {"to": "5551234", "body": "no plus sign"},
        {"to": "+15551234567", "body": ""},
        {"to": "+15551234567"},
        {"to": 15551234567, "body": "a number is not a string"},
        ["not", "an", "object"],
        {"to": "+15551234567", "body": "hi", "idempotency_key": "k1"},  # it is a header
    ):
        response = await api.http.post("/v1/messages", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    unauthenticated = await api.http.post(
        "/v1/messages",
        json={"to": "+15551234567", "body": "hi"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert unauthenticated.status_code == 401
