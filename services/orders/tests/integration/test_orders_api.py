"""The orders API over real HTTP against a real orders process, PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaConsumer

from waybill.common import topics
from waybill.devstack.testing import new_tenant

from .conftest import Tenant, order_body


async def test_fifty_concurrent_orders_for_the_last_ten_units_yield_exactly_ten(tenant: Tenant):
    sku = f"LAST-{uuid.uuid4().hex[:6]}"
    await tenant.stock(sku, 10)

    responses = await asyncio.gather(
        *(tenant.service.post("/orders", json=order_body(sku)) for _ in range(50))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 10, statuses
    refused = [r for r in responses if r.status_code != 201]
    assert len(refused) == 40
    assert all(r.status_code == 409 for r in refused)
    assert all(r.json()["code"] == "INSUFFICIENT_STOCK" for r in refused)
    stock = (await tenant.admin.get(f"/inventory/{sku}")).json()
    assert stock["available"] == 0
    assert stock["reserved"] == 10


async def test_same_idempotency_key_and_body_returns_the_same_order_once(tenant: Tenant):
    await tenant.stock("IDEM", 5)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await tenant.service.post("/orders", json=order_body("IDEM"), headers=key)
    again = await tenant.service.post("/orders", json=order_body("IDEM"), headers=key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = (await tenant.service.get("/orders")).json()["items"]
    assert [o["id"] for o in listed] == [first.json()["id"]]
    assert (await tenant.admin.get("/inventory/IDEM")).json()["available"] == 4


async def test_same_idempotency_key_with_another_body_is_refused(tenant: Tenant):
    await tenant.stock("IDEM2", 5)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await tenant.service.post("/orders", json=order_body("IDEM2"), headers=key)
    other = await tenant.service.post("/orders", json=order_body("IDEM2", 2), headers=key)

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await tenant.admin.get("/inventory/IDEM2")).json()["available"] == 4


async def test_concurrent_requests_with_one_idempotency_key_place_one_order(tenant: Tenant):
    await tenant.stock("IDEM3", 50)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    responses = await asyncio.gather(
        *(tenant.service.post("/orders", json=order_body("IDEM3"), headers=key) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await tenant.admin.get("/inventory/IDEM3")).json()["available"] == 49


async def test_another_tenant_cannot_see_or_cancel_an_order(tenant: Tenant, infra, orders_service):
    await tenant.stock("ISO", 3)
    order = (await tenant.service.post("/orders", json=order_body("ISO"))).json()
    other = await _another_tenant(infra, orders_service)

    assert (await other.service.get(f"/orders/{order['id']}")).status_code == 404
    assert (await other.service.get(f"/orders/{order['id']}/events")).status_code == 404
    assert (await other.service.post(f"/orders/{order['id']}/cancel")).status_code == 404
    assert (await other.service.get("/orders")).json()["items"] == []
    assert (await other.admin.get("/inventory/ISO")).status_code == 404
    assert (await tenant.service.get(f"/orders/{order['id']}")).json()[
        "status"
    ] == "pending_payment"


async def test_wrong_role_is_forbidden_and_no_key_is_unauthenticated(tenant: Tenant):
    assert (await tenant.agent.post("/orders", json=order_body())).status_code == 403
    assert (await tenant.service.put("/inventory/X", json={"available": 1})).status_code == 403
    anonymous = await tenant.service.get("/orders", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")


async def test_cancelling_releases_the_reserved_stock(tenant: Tenant):
    await tenant.stock("CXL", 2)
    order = (await tenant.service.post("/orders", json=order_body("CXL", 2))).json()
    assert (await tenant.admin.get("/inventory/CXL")).json()["available"] == 0

    cancelled = await tenant.service.post(f"/orders/{order['id']}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await tenant.admin.get("/inventory/CXL")).json() | {"version": 0} == {
        "sku": "CXL",
        "available": 2,
        "reserved": 0,
        "version": 0,
    }
    again = await tenant.service.post(f"/orders/{order['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "INVALID_TRANSITION"
    events = (await tenant.service.get(f"/orders/{order['id']}/events")).json()["items"]
    assert [(e["type"], e["version"]) for e in events] == [
        ("order.placed", 1),
        ("order.cancelled", 2),
    ]


async def test_a_placed_order_reaches_kafka_through_the_outbox(tenant: Tenant, infra):
    await tenant.stock("KAFKA", 1)
    order = (await tenant.service.post("/orders", json=order_body("KAFKA"))).json()

    consumer = AIOKafkaConsumer(
        topics.ORDERS_EVENTS,
        bootstrap_servers=infra.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"test-{uuid.uuid4().hex}",
    )
    await consumer.start()
    try:
        placed = await asyncio.wait_for(_first_record(consumer, order["id"]), timeout=60)
    finally:
        await consumer.stop()
    headers = {k: v.decode() for k, v in placed.headers}
    assert placed.key == order["id"].encode()
    assert headers["ce_type"] == "order.placed"
    assert headers["ce_tenantid"] == tenant.id
    assert headers["ce_sequence"] == "1"
    assert json.loads(placed.value)["total_cents"] == 1250


async def _first_record(consumer: AIOKafkaConsumer, key: str):
    async for record in consumer:
        if record.key == key.encode():
            return record
    raise AssertionError("topic ended")


async def _another_tenant(infra, orders_service) -> Tenant:
    return await new_tenant(infra, orders_service.url)


async def test_the_callers_trace_continues_onto_the_kafka_record(tenant: Tenant, infra):
    await tenant.stock("TRACE", 1)
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    order = (
        await tenant.service.post(
            "/orders", json=order_body("TRACE"), headers={"traceparent": traceparent}
        )
    ).json()

    consumer = AIOKafkaConsumer(
        topics.ORDERS_EVENTS,
        bootstrap_servers=infra.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"test-{uuid.uuid4().hex}",
    )
    await consumer.start()
    try:
        placed = await asyncio.wait_for(_first_record(consumer, order["id"]), timeout=60)
    finally:
        await consumer.stop()
    headers = {k: v.decode() for k, v in placed.headers}
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["ce_correlationid"]


async def test_an_orders_events_page_through_in_version_order(tenant: Tenant):
    from waybill.common.http.pagination import encode_cursor

    await tenant.stock("EVPAGE", 1)
    order = (await tenant.service.post("/orders", json=order_body("EVPAGE"))).json()
    await tenant.service.post(f"/orders/{order['id']}/cancel")
    url = f"/orders/{order['id']}/events"

    first = (await tenant.service.get(url, params={"limit": 1})).json()
    second = (
        await tenant.service.get(url, params={"limit": 1, "cursor": first["next_cursor"]})
    ).json()

    assert [e["type"] for e in first["items"] + second["items"]] == [
        "order.placed",
        "order.cancelled",
    ]
    assert second["next_cursor"] is None
    forged = await tenant.service.get(url, params={"cursor": encode_cursor({"v": "x"})})
    assert forged.status_code == 422
    assert forged.json()["code"] == "INVALID_CURSOR"
