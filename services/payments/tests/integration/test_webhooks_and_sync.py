"""Provider webhooks (signed, deduplicated) and the payment sync job, against real processes."""

from __future__ import annotations

import json
import time

from waybill.common.settings import WaybillSettings
from waybill.devstack.testing import eventually
from waybill.payments import signature

from .conftest import Shop

SECRET = WaybillSettings().provider_webhook_secret  # what the saga's sandbox and payments use


def succeeded_event(event_id: str, intent_id: str, payment_id: str) -> bytes:
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 1250,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"payment_id": payment_id},
    }
    body = {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent},
    }
    return json.dumps(body).encode()


async def webhook_events(shop: Shop, intent_id: str) -> list[dict]:
    response = await shop.sandbox.get("/admin/webhooks", params={"payment_intent": intent_id})
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def test_a_duplicated_webhook_has_one_effect(shop: Shop):
    await shop.faults(webhook_duplicate_rate=1)
    order = await shop.place("pm_card_async")

    payment = await shop.settled(order["id"], "captured")

    async def both_copies_delivered() -> list[dict] | None:
        events = await webhook_events(shop, payment["provider_payment_id"])
        delivered = [d for e in events for d in e["deliveries"] if d["status"] == "delivered"]
        return events if len(delivered) >= 2 else None

    events = await eventually(both_copies_delivered, what="the duplicated webhook delivered")
    assert len({e["id"] for e in events}) == 1  # one provider event, sent twice
    after = await shop.payment_of(order["id"])
    assert after is not None
    assert after["version"] == 3  # created, processing, captured: the copy changed nothing
    assert len((await shop.ledger(order["id"]))["charges"]) == 1


async def test_a_webhook_event_id_seen_before_is_acknowledged_without_effect(shop: Shop, saga):
    await shop.faults(webhook_drop_rate=1)  # we play the provider for this payment
    order = await shop.place("pm_card_async")
    payment = await shop.settled(order["id"], "processing")
    body = succeeded_event(
        "evt_test_" + payment["id"], payment["provider_payment_id"], payment["id"]
    )

    first = await shop.sandbox.post(
        f"{saga.payments.url}/webhooks/provider",
        content=body,
        headers={"Provider-Signature": signature.sign(body, SECRET, int(time.time()))},
    )
    again = await shop.sandbox.post(
        f"{saga.payments.url}/webhooks/provider",
        content=body,
        headers={"Provider-Signature": signature.sign(body, SECRET, int(time.time()))},
    )

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert again.json() == {"status": "duplicate"}
    captured = await shop.settled(order["id"], "captured")
    assert captured["version"] == 3


async def test_a_webhook_with_a_bad_signature_is_refused(shop: Shop, saga):
    body = succeeded_event("evt_forged", "pi_forged", "pay_" + "0" * 32)
    forged = await shop.sandbox.post(
        f"{saga.payments.url}/webhooks/provider",
        content=body,
        headers={"Provider-Signature": signature.sign(body, "whsec_not_ours", int(time.time()))},
    )
    unsigned = await shop.sandbox.post(f"{saga.payments.url}/webhooks/provider", content=body)

    assert forged.status_code == 400
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert forged.json()["code"] == "INVALID_SIGNATURE"
    assert unsigned.status_code == 400
    assert unsigned.json()["code"] == "INVALID_SIGNATURE"


async def test_a_webhook_signed_ten_minutes_ago_is_refused(shop: Shop, saga):
    body = succeeded_event("evt_old", "pi_old", "pay_" + "0" * 32)
    old = await shop.sandbox.post(
        f"{saga.payments.url}/webhooks/provider",
        content=body,
        headers={"Provider-Signature": signature.sign(body, SECRET, int(time.time()) - 600)},
    )

    assert old.status_code == 400
    assert old.json()["code"] == "TIMESTAMP_OUT_OF_TOLERANCE"


async def test_a_dropped_webhook_is_settled_by_payment_sync(shop: Shop):
    await shop.faults(webhook_drop_rate=1)
    order = await shop.place("pm_card_async")

    payment = await shop.settled(order["id"], "captured")

    events = await webhook_events(shop, payment["provider_payment_id"])
    assert events, "the provider produced the webhook event"
    assert all(e["dropped"] for e in events)
    assert not [d for e in events for d in e["deliveries"] if d["status"] == "delivered"]
    assert len((await shop.ledger(order["id"]))["charges"]) == 1


async def test_admin_sync_reports_what_it_examined_and_settled(shop: Shop):
    forbidden = await shop.payments.post("/admin/payments/sync")
    result = await shop.payments_admin.post("/admin/payments/sync")

    assert forbidden.status_code == 403
    assert result.status_code == 200
    assert set(result.json()) == {"processed", "succeeded", "failed"}


async def test_an_operators_sync_asks_the_provider_now_about_every_processing_payment(
    shop: Shop,
):
    order = await shop.place("pm_card_async_silent")  # no webhook will ever come
    payment = await shop.settled(order["id"], "processing")
    intent_url = f"/v1/payment_intents/{payment['provider_payment_id']}"
    provider_key = {"Authorization": f"Bearer {WaybillSettings().provider_api_key}"}

    async def settled_at_the_provider() -> bool:
        response = await shop.sandbox.get(intent_url, headers=provider_key)
        return response.json()["status"] == "succeeded"

    await eventually(settled_at_the_provider, what="the provider settling the intent")

    narrowed = await shop.payments_admin.post("/admin/payments/sync", params={"older_than_s": 3600})
    now = await shop.payments_admin.post("/admin/payments/sync")

    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json() == {"processed": 0, "succeeded": 0, "failed": 0}
    assert now.status_code == 200, now.text
    assert now.json() == {"processed": 1, "succeeded": 1, "failed": 0}
    assert (await shop.payment_of(order["id"]) or {})["status"] == "captured"

    async def order_paid() -> dict | None:
        response = await shop.tenant.service.get(f"/orders/{order['id']}")
        return response.json() if response.json()["status"] == "paid" else None

    await eventually(order_paid, what="the order paid")
