"""A paid order becomes one shipment offered to the agent serving its postal code; the agent
accepts, ships and delivers it."""

from __future__ import annotations

from tests.shipping_stack import ShippingTenant


async def test_a_paid_order_is_shipped_and_delivered(shipper: ShippingTenant):
    agent = await shipper.add_agent(["12345"])
    shipment_id = await shipper.order_paid(postal_code="12345")

    offer = await agent.offer_for(shipment_id)
    accepted = await agent.client.post(f"/assignments/{offer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["agent_id"] == agent.id
    shipped = await agent.act(shipment_id, "ship")
    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["attempts"]) == ("in_transit", 1)
    delivered = await agent.act(shipment_id, "deliver")
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"
    types = [e["type"] for e in await shipper.events(shipment_id)]
    assert types == [
        "shipment.created",
        "shipment.assignment_offered",
        "shipment.assignment_accepted",
        "shipment.in_transit",
        "shipment.delivered",
    ]
