"""Idempotency keys expire after WAYBILL_ORDERS_IDEMPOTENCY_TTL_S: the same key is then a new
request, and expired keys are purged from the table."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx

from waybill.common.settings import service_database
from waybill.devstack.testing import eventually, start_service

from .conftest import Tenant, order_body

TTL_S = 1.0


async def _stored_keys(infra, tenant_id: str) -> set[str]:
    conn = await asyncpg.connect(infra.settings().asyncpg_dsn(service_database("orders")))
    try:
        rows = await conn.fetch("SELECT key FROM idempotency_keys WHERE tenant_id = $1", tenant_id)
    finally:
        await conn.close()
    return {r["key"] for r in rows}


async def test_after_the_ttl_the_same_key_is_a_new_request_and_old_keys_are_purged(
    tenant: Tenant, infra
) -> None:
    short_lived = await asyncio.to_thread(
        start_service,
        infra,
        "orders",
        extra_env={"WAYBILL_ORDERS_IDEMPOTENCY_TTL_S": str(TTL_S)},
    )
    try:
        await tenant.stock("IDEM-TTL", 100)
        client = httpx.AsyncClient(base_url=short_lived.url, headers=tenant.service.headers)
        key, forgotten = {"Idempotency-Key": uuid.uuid4().hex}, uuid.uuid4().hex
        first = await client.post("/orders", json=order_body("IDEM-TTL"), headers=key)
        placed_at = time.monotonic()
        await client.post(
            "/orders", json=order_body("IDEM-TTL"), headers={"Idempotency-Key": forgotten}
        )
        assert first.status_code == 201, first.text
        replay = await client.post("/orders", json=order_body("IDEM-TTL"), headers=key)
        if time.monotonic() - placed_at < TTL_S:  # within the TTL: the same order again
            assert replay.json()["id"] == first.json()["id"]
            assert replay.headers.get("idempotent-replayed") == "true"

        # Past the TTL (and the purge interval, which is the TTL when shorter than a minute).
        async def other_body() -> httpx.Response:
            again = await client.post(
                "/orders", json=order_body("IDEM-TTL", quantity=2), headers=key
            )
            # Until the TTL: 422 for the other body under the same key.
            assert again.status_code in (201, 422), again.text
            return again

        again = await eventually(
            other_body,
            until=lambda r: r.status_code == 201 and r.json()["id"] != first.json()["id"],
            timeout_s=30,
            interval_s=0.2,
            what="the key taken over after its TTL",
        )
        assert "idempotent-replayed" not in again.headers
        assert again.json()["items"][0]["quantity"] == 2

        async def purged() -> bool:
            await client.post(  # a claim: the path that purges expired keys
                "/orders",
                json=order_body("IDEM-TTL"),
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            return forgotten not in await _stored_keys(infra, tenant.id)

        await eventually(purged, timeout_s=30, interval_s=0.2, what="the expired key purged")
        await client.aclose()
    finally:
        short_lived.process.stop()
