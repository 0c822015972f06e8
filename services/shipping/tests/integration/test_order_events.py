"""Shipping follows orders and payments on Kafka: one shipment per paid order however often
order.paid arrives (v1 records upcast), and a pending shipment is cancelled, its offer
withdrawn, when its order is cancelled or refunded."""

from __future__ import annotations

import uuid

from tests.shipping_stack import ShippingTenant

from waybill.common import topics
from waybill.common.contracts.payments import PaymentRefunded
from waybill.devstack.records import envelope, publish


async def test_order_paid_delivered_three_times_makes_one_shipment(shipper: ShippingTenant):
    order_id, paid = shipper.paid(postal_code="ONCE")

    await shipper.publish_orders(paid, paid)
    await shipper.publish_orders(paid)
    await shipper.consumed()

    response = await shipper.admin.get("/shipments", params={"order_id": order_id})
    shipments = response.json()["items"]
    assert len(shipments) == 1
    types = [e["type"] for e in await shipper.events(shipments[0]["id"])]
    assert types.count("shipment.created") == 1


async def test_an_order_paid_of_schema_version_1_is_upcast(shipper: ShippingTenant):
    """What orders published before order.paid carried the address: the v1 payload, upcast;
    the shipment exists (one per order) but has no postal code, so it is never offered."""
    agent = await shipper.add_agent(["12345"])
    order_id = f"ord_{uuid.uuid4().hex}"
    _, paid = shipper.paid(order_id)
    v1 = {"order_id": order_id, "payment_id": paid.payment_id}

    await shipper.publish_orders(paid, schema_version=1, data=v1)

    shipment = await shipper.shipment_of(order_id)
    assert (shipment["status"], shipment["postal_code"]) == ("pending", None)
    await shipper.consumed()
    assert await agent.offers() == []
    assert [e["type"] for e in await shipper.events(shipment["id"])] == ["shipment.created"]


async def test_a_cancelled_order_cancels_its_pending_shipment_and_withdraws_the_offer(
    shipper: ShippingTenant,
):
    agent = await shipper.add_agent(["CANC"])
    order_id, paid = shipper.paid(postal_code="CANC")
    await shipper.publish_orders(paid)
    shipment_id = (await shipper.shipment_of(order_id))["id"]
    offer = await agent.offer_for(shipment_id)

    await shipper.cancel_order(order_id)

    cancelled = await shipper.wait_shipment(
        shipment_id, until=lambda s: s["status"] == "cancelled", what="cancelled"
    )
    assert cancelled["agent_id"] is None
    assert await agent.offers() == []
    late = await agent.client.post(f"/assignments/{offer['id']}/accept")
    assert (late.status_code, late.json()["code"]) == (409, "OFFER_EXPIRED")
    last = (await shipper.events(shipment_id))[-1]
    assert last["type"] == "shipment.cancelled"
    assert last["data"]["withdrawn_assignment_ids"] == [offer["id"]]


async def test_a_refund_cancels_a_pending_shipment(shipper: ShippingTenant):
    order_id, paid = shipper.paid(postal_code="REFUND")
    await shipper.publish_orders(paid)
    shipment_id = (await shipper.shipment_of(order_id))["id"]
    refunded = PaymentRefunded(
        payment_id=paid.payment_id, order_id=order_id, amount_cents=100, refund_id="re_1"
    )

    assert shipper.infra is not None
    await publish(
        shipper.infra.bootstrap_servers,
        topics.PAYMENTS_EVENTS,
        envelope(refunded, tenant_id=shipper.id, subject=paid.payment_id, sequence=4),
    )

    cancelled = await shipper.wait_shipment(
        shipment_id, until=lambda s: s["status"] == "cancelled", what="cancelled by refund"
    )
    assert cancelled["status"] == "cancelled"


async def test_a_shipment_on_its_way_is_not_cancelled_by_its_order(shipper: ShippingTenant):
    agent = await shipper.add_agent(["ONWAY"])
    order_id, paid = shipper.paid(postal_code="ONWAY")
    await shipper.publish_orders(paid)
    shipment_id = (await shipper.shipment_of(order_id))["id"]
    offer = await agent.offer_for(shipment_id)
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    assert (await agent.act(shipment_id, "ship")).status_code == 200

    await shipper.cancel_order(order_id)
    await shipper.consumed()

    assert (await shipper.shipment(shipment_id))["status"] == "in_transit"
