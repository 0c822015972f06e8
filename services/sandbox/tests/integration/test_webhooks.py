"""Webhook delivery: drop and duplicate knobs, retries of failed deliveries, restarts."""

from __future__ import annotations

import asyncio
import itertools

from waybill.devstack.testing import eventually


async def _async_intent(api) -> dict:
    response = await api.create_intent(api.intent_body("pm_card_async"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_dropped_webhook_is_recorded_but_never_sent(api, receiver):
    await api.set_faults(webhook_drop_rate=1.0)
    intent = await _async_intent(api)

    async def event_written():
        return await api.webhook_events(intent["id"])

    (event,) = await eventually(event_written, what="the webhook event")
    assert event["dropped"] is True
    assert event["deliveries"] == []
    assert receiver.for_intent(intent["id"]) == []
    assert await api.status(intent["id"]) == "succeeded"


async def test_duplicated_webhook_is_sent_twice_with_one_event_id(api, receiver):
    await api.set_faults(webhook_duplicate_rate=1.0)
    intent = await _async_intent(api)

    async def both_copies():
        received = receiver.for_intent(intent["id"])
        return len(received) == 2 and received

    first, second = await eventually(both_copies, what="two copies")
    assert first.event["id"] == second.event["id"]
    assert first.body == second.body


async def test_failed_delivery_is_retried_until_answered_2xx(api, receiver):
    intent = await _async_intent(api)
    receiver.failures[intent["id"]] = 2

    async def delivered():
        (event,) = await api.webhook_events(intent["id"]) or [None]
        return event and event["deliveries"][0]["status"] == "delivered" and event

    event = await eventually(delivered, timeout_s=15, what="delivery after two failures")
    attempts = event["deliveries"][0]["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # backoff 1 s, then 2 s
    assert len({r.event["id"] for r in receiver.for_intent(intent["id"])}) == 1


async def test_state_and_pending_deliveries_survive_a_restart(api, receiver):
    ok_body, key = api.intent_body("pm_card_ok"), api.new_key()
    ok = (await api.create_intent(ok_body, key)).json()
    pending = await _async_intent(api)
    receiver.failures[pending["id"]] = 1  # first attempt fails: a retry is pending in the db

    async def first_attempt_failed():
        return len(receiver.for_intent(pending["id"])) >= 1

    await eventually(first_attempt_failed, what="the failed first attempt")
    await asyncio.to_thread(api.process.restart)

    replay = await api.create_intent(ok_body, key)
    assert replay.json() == ok
    assert len(await api.charges(ok_body["metadata"]["order_id"])) == 1
    assert (await api.http.get(f"/v1/payment_intents/{ok['id']}")).json()["status"] == "succeeded"

    async def redelivered():
        events = await api.webhook_events(pending["id"])
        return events and events[0]["deliveries"][0]["status"] == "delivered"

    await eventually(redelivered, timeout_s=15, what="the retry after the restart")
    assert [r.headers and r.event["type"] for r in receiver.for_intent(pending["id"])] == [
        "payment_intent.succeeded",
        "payment_intent.succeeded",
    ]


async def test_admin_queues_shows_the_webhook_queue_and_its_last_jobs(api, receiver):
    intent = await _async_intent(api)
    receiver.failures[intent["id"]] = 1  # the first attempt fails: the job waits for its retry

    async def retry_waiting():
        response = await api.http.get("/admin/queues")
        assert response.status_code == 200, response.text
        body = response.json()
        mine = [j for j in body["recent_jobs"] if j["attempts"] >= 1 and j["last_error"]]
        return mine and body

    body = await eventually(retry_waiting, what="the delivery's retry in the queue view")
    (webhooks,) = body["queues"]
    assert webhooks["name"] == "webhooks"
    assert set(webhooks) == {"name", "depth", "running", "failed", "oldest_waiting_s"}
    assert len(body["recent_jobs"]) <= 20
    assert body["recent_jobs"][0]["status"] in {"queued", "running", "done"}
