"""Orders follows payment outcomes from Kafka: captured -> paid (stock committed), failed ->
payment_failed (stock released), a redelivered outcome changes nothing the second time."""

from __future__ import annotations

import uuid

from tests import orders_feed as feed
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.common.contracts.payments import PaymentCaptured, PaymentEvent, PaymentFailed
from waybill.common.envelope import EventEnvelope
from waybill.devstack.testing import Infra


async def test_a_captured_payment_marks_the_order_paid_once(tenant: Tenant, infra: Infra):
    await tenant.stock("PAID", 5)
    order = (await tenant.service.post("/orders", json=order_body("PAID", 2))).json()
    captured = PaymentCaptured(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        amount_cents=order["total_cents"],
        currency="USD",
        provider="sandbox",
        provider_payment_id="pi_test",
    )
    envelope = _envelope(tenant, captured)

    # The same record twice: a redelivery.
    await feed.publish(infra, topics.PAYMENTS_EVENTS, envelope, envelope)

    assert await feed.wait_status(tenant, order["id"], "paid") == "paid"
    stock = (await tenant.admin.get("/inventory/PAID")).json()
    assert (stock["available"], stock["reserved"]) == (3, 0)  # committed: gone for good
    # And once more, after the order is already paid.
    await feed.publish(infra, topics.PAYMENTS_EVENTS, envelope)
    await feed.wait_consumed(infra, topics.PAYMENTS_EVENTS, order["id"])
    events = (await tenant.service.get(f"/orders/{order['id']}/events")).json()["items"]
    assert [e["type"] for e in events] == ["order.placed", "order.paid"]
    assert events[1]["data"]["payment_id"] == captured.payment_id


async def test_a_failed_payment_releases_the_stock(tenant: Tenant, infra: Infra):
    await tenant.stock("FAIL", 5)
    order = (await tenant.service.post("/orders", json=order_body("FAIL", 2))).json()
    failed = PaymentFailed(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        code="card_declined",
        reason="Your card was declined.",
    )

    await feed.publish(infra, topics.PAYMENTS_EVENTS, _envelope(tenant, failed))

    assert await feed.wait_status(tenant, order["id"], "payment_failed") == "payment_failed"
    stock = (await tenant.admin.get("/inventory/FAIL")).json()
    assert (stock["available"], stock["reserved"]) == (5, 0)


async def test_a_capture_for_a_cancelled_order_leaves_it_cancelled(tenant: Tenant, infra: Infra):
    await tenant.stock("LATE", 5)
    order = (await tenant.service.post("/orders", json=order_body("LATE"))).json()
    assert (await tenant.service.post(f"/orders/{order['id']}/cancel")).status_code == 200
    captured = PaymentCaptured(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        amount_cents=order["total_cents"],
        currency="USD",
        provider="sandbox",
        provider_payment_id="pi_late",
    )
    await feed.publish(infra, topics.PAYMENTS_EVENTS, _envelope(tenant, captured))
    await feed.wait_consumed(infra, topics.PAYMENTS_EVENTS, order["id"])

    assert (await tenant.service.get(f"/orders/{order['id']}")).json()["status"] == "cancelled"
    stock = (await tenant.admin.get("/inventory/LATE")).json()
    assert (stock["available"], stock["reserved"]) == (5, 0)


def _envelope(tenant: Tenant, event: PaymentEvent) -> EventEnvelope:
    return feed.envelope(tenant, event, subject=event.payment_id)  # type: ignore[attr-defined]
