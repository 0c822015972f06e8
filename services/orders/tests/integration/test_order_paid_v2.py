"""``order.paid`` (schema version 2) carries what shipping and the notifier need from
``order.placed`` (the customer's contact, the shipping address): stored at version 2 in
orders' events table and published with ``ce_schemaversion`` 2, so no consumer keeps a copy
of ``order.placed``."""

from __future__ import annotations

from tests import orders_feed as feed
from tests.saga_stack import OrdersTenant as Tenant

from waybill.common import topics
from waybill.devstack.testing import Infra, eventually


async def test_the_order_paid_orders_appends_is_version_2_with_the_placed_customer_and_address(
    tenant: Tenant, infra: Infra
):
    order = await feed.paid_order(tenant, infra, "PAIDV2")

    response = await tenant.service.get(f"/orders/{order['id']}/events")
    assert response.status_code == 200, response.text
    placed, paid = response.json()["items"]
    assert (placed["type"], paid["type"]) == ("order.placed", "order.paid")
    assert paid["schema_version"] == 2  # as stored in the events table
    assert paid["data"]["customer"] == placed["data"]["customer"] == order["customer"]
    assert paid["data"]["shipping_address"] == placed["data"]["shipping_address"]
    assert paid["data"]["shipping_address"] == order["shipping_address"]

    def is_this_order_paid(headers: dict[str, str]) -> bool:
        return headers.get("ce_type") == "order.paid" and headers.get("ce_subject") == order["id"]

    [published] = await eventually(
        lambda: feed.records(infra, topics.ORDERS_EVENTS, is_this_order_paid),
        until=lambda found: len(found) == 1,
        what=f"order.paid of {order['id']} on {topics.ORDERS_EVENTS}",
    )
    assert published.headers["ce_schemaversion"] == "2"
    assert published.headers["ce_id"] == paid["id"]
    assert published.data == paid["data"]
