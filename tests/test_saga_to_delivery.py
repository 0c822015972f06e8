"""The whole saga across real processes: an order placed on orders is paid through payments
and the sandbox provider, becomes one shipment on shipping, is offered to the agent serving its
postal code, and the order follows the shipment to delivered (or returned and sent again)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.messaging_stack import mails_to, notifications_of, texts_to
from tests.saga_stack import OrdersTenant, Saga, order_body
from tests.shipping_stack import ShippingTenant

from waybill.devstack.eventually import eventually
from waybill.devstack.testing import Infra, ServiceProcess


@pytest.fixture
async def shop(
    infra: Infra, saga: Saga, tenant: OrdersTenant, shipping_service: ServiceProcess
) -> AsyncIterator[tuple[OrdersTenant, ShippingTenant]]:
    """One tenant on orders and on shipping (its keys are valid on every service)."""

    def on_shipping(client: httpx.AsyncClient) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=shipping_service.url, headers=client.headers, timeout=30)

    shipping = ShippingTenant(
        tenant.id,
        on_shipping(tenant.admin),
        on_shipping(tenant.service),
        on_shipping(tenant.agent),
        infra=infra,
    )
    yield tenant, shipping
    await shipping.aclose()


async def _order_status(orders: OrdersTenant, order_id: str, wanted: str) -> None:
    async def status() -> str:
        return (await orders.service.get(f"/orders/{order_id}")).json()["status"]  # type: ignore[no-any-return]

    await eventually(status, until=lambda s: s == wanted, timeout_s=60, what=f"order {wanted}")


async def test_an_order_runs_from_placed_to_delivered(shop):
    orders, shipping = shop
    agent = await shipping.add_agent(["12345"])
    await orders.stock("E2E", 5)
    placed = await orders.service.post("/orders", json=order_body("E2E"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    await _order_status(orders, order_id, "paid")
    shipment = await shipping.shipment_of(order_id, timeout_s=60)
    offer = await agent.offer_for(shipment["id"])
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    assert (await agent.act(shipment["id"], "ship")).status_code == 200
    await _order_status(orders, order_id, "shipped")
    assert (await agent.act(shipment["id"], "deliver")).status_code == 200
    await _order_status(orders, order_id, "delivered")

    events = (await orders.service.get(f"/orders/{order_id}/events")).json()["items"]
    assert [e["type"] for e in events] == [
        "order.placed",
        "order.paid",
        "order.shipped",
        "order.delivered",
    ]
    assert events[1]["schema_version"] == 2
    cancel = await orders.service.post(f"/orders/{order_id}/cancel")
    assert (cancel.status_code, cancel.json()["code"]) == (
        409,
        "ORDER_CANNOT_CANCEL_AFTER_SHIPPING",
    )


async def test_a_returned_order_sent_out_again_is_shipped_then_delivered(shop):
    orders, shipping = shop
    agent = await shipping.add_agent(["12345"])
    await orders.stock("E2E-R", 5)
    order_id = (await orders.service.post("/orders", json=order_body("E2E-R"))).json()["id"]
    shipment = await shipping.shipment_of(order_id, timeout_s=60)
    offer = await agent.offer_for(shipment["id"])
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200

    for action, order_status in (
        ("ship", "shipped"),
        ("return_to_sender", "returned"),
        ("retry_delivery", "shipped"),
        ("deliver", "delivered"),
    ):
        assert (await agent.act(shipment["id"], action)).status_code == 200
        await _order_status(orders, order_id, order_status)


async def test_a_paid_order_cancelled_before_it_ships_cancels_its_shipment(shop):
    orders, shipping = shop
    agent = await shipping.add_agent(["12345"])
    await orders.stock("E2E-C", 5)
    order_id = (await orders.service.post("/orders", json=order_body("E2E-C"))).json()["id"]
    shipment = await shipping.shipment_of(order_id, timeout_s=60)
    await agent.offer_for(shipment["id"])

    cancelled = await orders.service.post(f"/orders/{order_id}/cancel")

    assert cancelled.status_code == 200, cancelled.text
    await shipping.wait_shipment(
        shipment["id"], until=lambda s: s["status"] == "cancelled", timeout_s=60, what="cancelled"
    )
    assert await agent.offers() == []


async def test_the_customer_hears_of_each_step_once_by_email_and_gets_the_code_by_sms(
    shop, infra: Infra, notifier_service: ServiceProcess, outside: httpx.AsyncClient
):
    """The notifier on the real saga: per order placed -> delivered, four emails (one per
    step, one Message-ID each) and one SMS with the delivery code the agent was asked for."""
    orders, shipping = shop
    agent = await shipping.add_agent(["12345"])
    await orders.stock("E2E-N", 5)
    email = f"c-{uuid.uuid4().hex[:10]}@example.com"
    phone = "+1555" + "".join(random.choices("0123456789", k=7))
    body = order_body("E2E-N", customer={"id": "cus_n", "email": email, "phone": phone})
    order_id = (await orders.service.post("/orders", json=body)).json()["id"]
    shipment = await shipping.shipment_of(order_id, timeout_s=60)
    offer = await agent.offer_for(shipment["id"])
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    assert (await agent.act(shipment["id"], "ship")).status_code == 200
    assert (await agent.act(shipment["id"], "deliver")).status_code == 200
    await _order_status(orders, order_id, "delivered")

    mails = await eventually(
        lambda: mails_to(outside, email), until=lambda m: len(m) >= 4, timeout_s=60, what="mail"
    )
    texts = await eventually(lambda: texts_to(outside, phone), timeout_s=30, what="the SMS")

    code = await shipping.delivery_code(shipment["id"])
    assert len(mails) == 4 and len({m["message_id"] for m in mails}) == 4
    assert sum(code in m["text"] for m in mails) == 1  # the "shipped" email
    (text,) = texts
    assert code in text["body"]
    async with httpx.AsyncClient(
        base_url=notifier_service.url, headers=orders.service.headers, timeout=30
    ) as notifier:
        listed = await notifications_of(notifier, order_id)
    assert sorted((n["template"], n["channel"]) for n in listed) == [
        ("delivered", "email"),
        ("order_placed", "email"),
        ("payment_received", "email"),
        ("shipped", "email"),
        ("shipped", "sms"),
    ]
    assert all(n["status"] == "sent" for n in listed)
    assert all(email not in n["recipient"] and phone not in n["recipient"] for n in listed)
