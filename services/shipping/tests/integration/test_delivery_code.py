"""Proof of delivery: where the tenant requires it, deliver needs the code the customer got
(sealed for the notifier on Kafka, never shown by the API); wrong -> 422, the fifth wrong and
every try after it -> 409 DELIVERY_CODE_LOCKED until an admin issues a new code."""

from __future__ import annotations

from tests.shipping_stack import DeliveryAgent, ShippingTenant


async def _in_transit(shipper: ShippingTenant, zip_code: str) -> tuple[DeliveryAgent, str]:
    agent = await shipper.add_agent([zip_code])
    shipment_id = await shipper.order_paid(postal_code=zip_code)
    offer = await agent.offer_for(shipment_id)
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    shipped = await agent.act(shipment_id, "ship")
    assert shipped.status_code == 200, shipped.text
    return agent, shipment_id


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_without_the_setting_the_code_is_ignored(shipper: ShippingTenant):
    agent, shipment_id = await _in_transit(shipper, "CODE0")

    delivered = await agent.act(shipment_id, "deliver", code="000000")

    assert delivered.status_code == 200, delivered.text


async def test_a_wrong_code_is_refused_and_the_right_one_delivers(shipper: ShippingTenant):
    await shipper.configure(require_delivery_code=True)
    agent, shipment_id = await _in_transit(shipper, "CODE1")
    code = await shipper.delivery_code(shipment_id)

    missing = await agent.act(shipment_id, "deliver")
    wrong = await agent.act(shipment_id, "deliver", code=_wrong(code))
    right = await agent.act(shipment_id, "deliver", code=code)

    assert (missing.status_code, missing.json()["code"]) == (422, "DELIVERY_CODE_MISMATCH")
    assert (wrong.status_code, wrong.json()["code"]) == (422, "DELIVERY_CODE_MISMATCH")
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "delivered"


async def test_the_fifth_wrong_code_locks_the_check_until_an_admin_resets_it(
    shipper: ShippingTenant,
):
    await shipper.configure(require_delivery_code=True)
    agent, shipment_id = await _in_transit(shipper, "CODE2")
    code = await shipper.delivery_code(shipment_id)

    statuses = [
        (r.status_code, r.json()["code"])
        for r in [await agent.act(shipment_id, "deliver", code=_wrong(code)) for _ in range(5)]
    ]
    locked_right = await agent.act(shipment_id, "deliver", code=code)

    assert statuses == [(422, "DELIVERY_CODE_MISMATCH")] * 4 + [(409, "DELIVERY_CODE_LOCKED")]
    assert (locked_right.status_code, locked_right.json()["code"]) == (409, "DELIVERY_CODE_LOCKED")
    assert (await shipper.shipment(shipment_id))["delivery_code_locked"] is True

    version = (await shipper.shipment(shipment_id))["version"]
    reset = await shipper.admin.post(f"/shipments/{shipment_id}/reset-code")
    assert reset.status_code == 200, reset.text
    assert reset.json()["delivery_code_locked"] is False
    new_code = await shipper.delivery_code(shipment_id, after=version)
    delivered = await agent.act(shipment_id, "deliver", code=new_code)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"


async def test_no_response_shows_the_code_or_its_hash(shipper: ShippingTenant):
    agent, shipment_id = await _in_transit(shipper, "CODE3")
    code = await shipper.delivery_code(shipment_id)

    bodies = [
        (await shipper.admin.get(f"/shipments/{shipment_id}/events")).text,
        (await agent.client.get(f"/shipments/{shipment_id}/events")).text,
        (await shipper.admin.get(f"/shipments/{shipment_id}")).text,
        (await agent.client.get("/shipments")).text,
    ]

    for body in bodies:
        assert "delivery_code_sealed" not in body and "delivery_code_hash" not in body
        assert f'"{code}"' not in body
