"""Orders follows its shipment from Kafka (shipping's events, published as shipping does):
in transit -> shipped, delivered -> delivered, returned -> returned, and out again -> shipped;
the same news twice or a retried delivery ships the order once; news for an order cancelled
meanwhile leaves it cancelled, is logged, and dead-letters nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tests import orders_feed as feed
from tests.saga_stack import OrdersTenant as Tenant

from waybill.common import topics
from waybill.common.contracts.shipping import (
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentInTransit,
    ShipmentReturned,
    ShippingEvent,
)
from waybill.common.envelope import EventEnvelope
from waybill.devstack.testing import Infra, ServiceProcess, eventually


class Shipment:
    """One shipment's stream as shipping would publish it: each event at the next version."""

    def __init__(self, tenant: Tenant, order_id: str) -> None:
        self.tenant, self.order_id = tenant, order_id
        self.id = f"shp_{uuid.uuid4().hex}"
        self.version = 2  # shipment.created and the accepted offer came first (not followed)
        self.attempts = 0

    def _next(self, event: ShippingEvent) -> EventEnvelope:
        self.version += 1
        return feed.envelope(self.tenant, event, subject=self.id, sequence=self.version)

    def in_transit(self) -> EventEnvelope:
        self.attempts += 1
        return self._next(
            ShipmentInTransit(
                shipment_id=self.id,
                order_id=self.order_id,
                agent_id="agt_1",
                attempt=self.attempts,
                delivery_code_sealed="sealed",
                delivery_code_hash="hash",
            )
        )

    def failed(self) -> EventEnvelope:
        return self._next(
            ShipmentFailed(
                shipment_id=self.id,
                order_id=self.order_id,
                agent_id="agt_1",
                reason="RECIPIENT_ABSENT",
            )
        )

    def delivered(self) -> EventEnvelope:
        return self._next(
            ShipmentDelivered(
                shipment_id=self.id,
                order_id=self.order_id,
                agent_id="agt_1",
                delivered_at=datetime.now(UTC),
            )
        )

    def returned(self) -> EventEnvelope:
        return self._next(
            ShipmentReturned(shipment_id=self.id, order_id=self.order_id, agent_id="agt_1")
        )


async def test_a_paid_order_is_shipped_then_delivered_with_its_shipment(
    tenant: Tenant, infra: Infra
):
    order = await feed.paid_order(tenant, infra, "SHIP")
    shipment = Shipment(tenant, order["id"])

    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.in_transit())
    assert await feed.wait_status(tenant, order["id"], "shipped") == "shipped"
    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.delivered())
    assert await feed.wait_status(tenant, order["id"], "delivered") == "delivered"

    events = await _events(tenant, order["id"])
    assert [e["type"] for e in events] == [
        "order.placed",
        "order.paid",
        "order.shipped",
        "order.delivered",
    ]
    assert {e["data"]["shipment_id"] for e in events[2:]} == {shipment.id}


async def test_a_returned_order_sent_out_again_is_shipped_again_then_delivered(
    tenant: Tenant, infra: Infra
):
    order = await feed.paid_order(tenant, infra, "RETURN")
    shipment = Shipment(tenant, order["id"])

    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.in_transit(), shipment.returned())
    assert await feed.wait_status(tenant, order["id"], "returned") == "returned"
    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.in_transit())  # retry_delivery
    assert await feed.wait_status(tenant, order["id"], "shipped") == "shipped"
    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.delivered())
    assert await feed.wait_status(tenant, order["id"], "delivered") == "delivered"

    events = await _events(tenant, order["id"])
    assert [e["type"] for e in events] == [
        "order.placed",
        "order.paid",
        "order.shipped",
        "order.returned",
        "order.shipped",
        "order.delivered",
    ]


async def test_a_shipped_or_returned_order_can_no_longer_be_cancelled(tenant: Tenant, infra: Infra):
    order = await feed.paid_order(tenant, infra, "NOCANCEL")
    shipment = Shipment(tenant, order["id"])

    for news, status in ((shipment.in_transit(), "shipped"), (shipment.returned(), "returned")):
        await feed.publish(infra, topics.SHIPPING_EVENTS, news)
        await feed.wait_status(tenant, order["id"], status)
        response = await tenant.service.post(f"/orders/{order['id']}/cancel")
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "ORDER_CANNOT_CANCEL_AFTER_SHIPPING"
    assert (await tenant.service.get(f"/orders/{order['id']}")).json()["status"] == "returned"


async def test_a_shipment_returned_before_it_went_out_returns_the_paid_order(
    tenant: Tenant, infra: Infra
):
    order = await feed.paid_order(tenant, infra, "NEVEROUT")
    shipment = Shipment(tenant, order["id"])

    # mark_failed while pending (e.g. ADDRESS_NOT_FOUND), then return_to_sender.
    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.failed(), shipment.returned())
    assert await feed.wait_status(tenant, order["id"], "returned") == "returned"
    events = await _events(tenant, order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.paid", "order.returned"]


async def test_a_redelivered_or_retried_shipment_in_transit_ships_the_order_once(
    tenant: Tenant, infra: Infra
):
    order = await feed.paid_order(tenant, infra, "TWICE")
    shipment = Shipment(tenant, order["id"])
    sent = shipment.in_transit()

    # The same record twice (a redelivery), then a failed attempt sent out again (retry).
    await feed.publish(
        infra, topics.SHIPPING_EVENTS, sent, sent, shipment.failed(), shipment.in_transit()
    )
    await feed.wait_consumed(infra, topics.SHIPPING_EVENTS, order["id"])

    assert (await tenant.service.get(f"/orders/{order['id']}")).json()["status"] == "shipped"
    events = await _events(tenant, order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.paid", "order.shipped"]
    assert await _dead_letters(infra, tenant) == []


async def test_shipment_news_for_an_order_cancelled_meanwhile_leaves_it_cancelled_and_is_logged(
    tenant: Tenant, infra: Infra, orders_service: ServiceProcess
):
    order = await feed.paid_order(tenant, infra, "RACE")
    assert (await tenant.service.post(f"/orders/{order['id']}/cancel")).status_code == 200
    shipment = Shipment(tenant, order["id"])  # the agent set off before shipping heard

    await feed.publish(infra, topics.SHIPPING_EVENTS, shipment.in_transit(), shipment.delivered())
    await feed.wait_consumed(infra, topics.SHIPPING_EVENTS, order["id"])

    assert (await tenant.service.get(f"/orders/{order['id']}")).json()["status"] == "cancelled"
    events = await _events(tenant, order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.paid", "order.cancelled"]
    assert await _dead_letters(infra, tenant) == []
    ignored = await eventually(
        lambda: _log_lines(orders_service.process.log_path, "order_shipment_ignored", order["id"]),
        until=lambda lines: len(lines) == 2,
        what="order_shipment_ignored logged for both shipment events",
    )
    assert [(line["order_status"], line["shipment_status"]) for line in ignored] == [
        ("cancelled", "in_transit"),
        ("cancelled", "delivered"),
    ]
    assert {line["level"] for line in ignored} == {"warning"}


async def _events(tenant: Tenant, order_id: str) -> list[dict]:
    response = await tenant.service.get(f"/orders/{order_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def _dead_letters(infra: Infra, tenant: Tenant) -> list[feed.Record]:
    return await feed.records(
        infra, topics.DEAD_LETTERS, lambda headers: headers.get("ce_tenantid") == tenant.id
    )


def _log_lines(path: Path, event: str, order_id: str) -> list[dict]:
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if event not in text or order_id not in text:
            continue
        line = json.loads(text)
        if line.get("event") == event and line.get("order_id") == order_id:
            lines.append(line)
    return lines
