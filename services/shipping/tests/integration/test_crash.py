"""Shipping SIGKILLed while paid orders stream in: after the restart every order has exactly
one shipment, created once and offered, and every one of their events reached Kafka."""

from __future__ import annotations

from tests.shipping_stack import ShippingTenant

from waybill.common import topics
from waybill.devstack.eventually import eventually
from waybill.devstack.records import read_records
from waybill.devstack.testing import ServiceProcess

ORDERS = 30


async def test_a_killed_shipping_loses_and_doubles_nothing(
    shipper: ShippingTenant, shipping_service: ServiceProcess
):
    agent = await shipper.add_agent(["CRASH"], capacity=ORDERS)
    paid = [shipper.paid(postal_code="CRASH") for _ in range(ORDERS)]

    await shipper.publish_orders(*(event for _, event in paid[: ORDERS // 2]))
    await shipper.shipment_of(paid[0][0])  # it is working through them
    shipping_service.kill()
    await shipper.publish_orders(*(event for _, event in paid[ORDERS // 2 :]))
    shipping_service.restart()

    async def shipments() -> list[dict]:
        response = await shipper.admin.get("/shipments", params={"limit": 200})
        return response.json()["items"]  # type: ignore[no-any-return]

    settled = await eventually(
        shipments, until=lambda items: len(items) >= ORDERS, timeout_s=90, what="every shipment"
    )
    assert sorted(s["order_id"] for s in settled) == sorted(order_id for order_id, _ in paid)
    offered = await eventually(
        agent.offers, until=lambda o: len(o) == ORDERS, timeout_s=60, what="every offer"
    )
    assert len({o["shipment_id"] for o in offered}) == ORDERS
    for shipment in settled:
        types = [e["type"] for e in await shipper.events(shipment["id"])]
        assert types == ["shipment.created", "shipment.assignment_offered"], types

    ids = {s["id"].encode() for s in settled}

    async def published() -> set[str]:
        records = await read_records(
            shipper.infra.bootstrap_servers,  # type: ignore[union-attr]
            topics.SHIPPING_EVENTS,
            lambda r: r.key in ids,
        )
        return {r.headers["ce_id"] for r in records}

    # At least once on Kafka (a relay killed between send and delete resends): distinct ids.
    await eventually(
        published, until=lambda seen: len(seen) == 2 * ORDERS, timeout_s=60, what="relayed"
    )
