"""orders' AsyncAPI document is derived from its event classes and its subscription table:
it lists the public order events it publishes (never the private stock events) and only the
payment and shipment events it subscribes to (none of the shipment's offers or failed attempts;
the shipment tests show the group really reads the shipping topic)."""

from __future__ import annotations

from typing import Any

from waybill.common import topics
from waybill.devstack.testing import Tenant

ORDER_TYPES = {
    "order.placed",
    "order.paid",
    "order.payment_failed",
    "order.cancelled",
    "order.expired",
    "order.shipped",
    "order.delivered",
    "order.returned",
}


def sides(document: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(published, consumed) as (topic, event type) pairs, read from the channel names."""
    published: set[tuple[str, str]] = set()
    consumed: set[tuple[str, str]] = set()
    for name, channel in document["channels"].items():
        _, side, event_type = name.split(":")
        (published if side == "publish" else consumed).add((channel["address"], event_type))
    return published, consumed


async def test_the_document_lists_public_order_events_and_only_the_subscribed_events(
    tenant: Tenant,
):
    response = await tenant.service.get("/asyncapi.json")
    assert response.status_code == 200, response.text
    published, consumed = sides(response.json())
    assert published == {(topics.ORDERS_EVENTS, t) for t in ORDER_TYPES}
    assert consumed == {
        (topics.PAYMENTS_EVENTS, "payment.captured"),
        (topics.PAYMENTS_EVENTS, "payment.failed"),
        (topics.SHIPPING_EVENTS, "shipment.in_transit"),
        (topics.SHIPPING_EVENTS, "shipment.delivered"),
        (topics.SHIPPING_EVENTS, "shipment.returned"),
    }
