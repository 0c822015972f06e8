"""Webhook endpoints (CRUD, secrets, rotation) and the fan-out of consumed events: one message
per (endpoint, event) however often the event arrives, only to endpoints that want its type,
and never with the sealed delivery code in its body."""

from __future__ import annotations

import uuid

import pytest
from standardwebhooks import Webhook

from waybill.common import topics
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.contracts.shipping import ShipmentInTransit
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish, wait_caught_up
from waybill.devstack.testing import Infra, Tenant, new_tenant


async def _endpoint(backend: Tenant, event_types: list[str]) -> dict:
    response = await backend.service.post(
        "/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "event_types": event_types},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_an_endpoint_has_a_standard_webhooks_secret_that_rotates(
    backend: Tenant, infra: Infra
):
    endpoint = await _endpoint(backend, ["order.cancelled"])
    assert endpoint["secret"].startswith("whsec_")
    Webhook(endpoint["secret"])  # the library accepts it as a signing key

    rotated = await backend.service.post(f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
    shown = await backend.service.get(f"/webhook-endpoints/{endpoint['id']}")
    patched = await backend.service.patch(
        f"/webhook-endpoints/{endpoint['id']}", json={"event_types": ["*"], "rate_limit_per_s": 5}
    )

    assert rotated.status_code == 200 and rotated.json()["secret"] != endpoint["secret"]
    assert "secret" not in shown.json()
    assert patched.json()["event_types"] == ["*"] and patched.json()["rate_limit_per_s"] == 5
    other = await new_tenant(infra, str(backend.service.base_url))
    try:
        assert (await other.service.get(f"/webhook-endpoints/{endpoint['id']}")).status_code == 404
    finally:
        await other.aclose()
    gone = await backend.service.delete(f"/webhook-endpoints/{endpoint['id']}")
    assert gone.status_code == 204
    assert (await backend.service.get(f"/webhook-endpoints/{endpoint['id']}")).status_code == 404


async def test_each_event_is_one_message_per_endpoint_that_wants_it(backend: Tenant, infra: Infra):
    wanted = await _endpoint(backend, ["order.cancelled", "shipment.in_transit"])
    everything = await _endpoint(backend, ["*"])
    elsewhere = await _endpoint(backend, ["order.paid"])
    order_id = f"ord_{uuid.uuid4().hex}"
    cancelled = envelope(
        OrderCancelled(order_id=order_id, reason="requested"),
        tenant_id=backend.id,
        subject=order_id,
        sequence=3,
    )

    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled, cancelled)
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled)
    await wait_caught_up(infra.bootstrap_servers, "notifier", topics.ORDERS_EVENTS)

    async def deliveries(endpoint: dict) -> list[dict]:
        response = await backend.service.get(f"/webhook-endpoints/{endpoint['id']}/deliveries")
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]

    for endpoint in (wanted, everything):
        items = await deliveries(endpoint)
        assert [(d["event_type"], d["status"]) for d in items] == [("order.cancelled", "pending")]
        assert items[0]["id"].startswith("msg_") and items[0]["message_id"] == items[0]["id"]
    assert await deliveries(elsewhere) == []


async def test_a_message_never_carries_the_sealed_delivery_code(backend: Tenant, infra: Infra):
    endpoint = await _endpoint(backend, ["shipment.in_transit"])
    shipment_id = f"shp_{uuid.uuid4().hex}"
    in_transit = ShipmentInTransit(
        shipment_id=shipment_id,
        order_id=f"ord_{uuid.uuid4().hex}",
        agent_id="agt_1",
        attempt=1,
        delivery_code_sealed="gAAAA-sealed",
        delivery_code_hash="0" * 64,
    )

    await publish(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        envelope(in_transit, tenant_id=backend.id, subject=shipment_id, sequence=4),
    )

    import asyncpg

    from waybill.common.settings import service_database

    async def bodies() -> list[str]:
        conn = await asyncpg.connect(infra.settings().asyncpg_dsn(service_database("notifier")))
        try:
            rows = await conn.fetch(
                "SELECT body::text FROM webhook_messages WHERE endpoint_id = $1", endpoint["id"]
            )
            return [r[0] for r in rows]
        finally:
            await conn.close()

    found = await eventually(bodies, timeout_s=30, what="the in_transit message")
    assert len(found) == 1
    assert "delivery_code" not in found[0] and "gAAAA" not in found[0]
    assert shipment_id in found[0]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/hook",  # loopback, outside the allow-list's 127.0.0.1/32
        "http://[::1]/hook",
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_an_unsafe_webhook_url_is_refused_and_nothing_is_saved(backend: Tenant, url: str):
    refused = await backend.service.post(
        "/webhook-endpoints", json={"url": url, "event_types": ["*"]}
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "UNSAFE_WEBHOOK_URL"
    assert (await backend.service.get("/webhook-endpoints")).json()["items"] == []


async def test_the_allow_listed_address_passes_and_a_patch_is_checked_too(backend: Tenant):
    endpoint = await _endpoint(
        backend, ["*"]
    )  # http://127.0.0.1:9: WAYBILL_NOTIFIER_ALLOWED_TARGETS

    moved = await backend.service.patch(
        f"/webhook-endpoints/{endpoint['id']}", json={"url": "http://169.254.169.254/"}
    )

    assert (moved.status_code, moved.json()["code"]) == (422, "UNSAFE_WEBHOOK_URL")
    shown = await backend.service.get(f"/webhook-endpoints/{endpoint['id']}")
    assert shown.json()["url"] == "http://127.0.0.1:9/hook"
