"""Unpaid reservations expire (order.expired + stock released); lists paginate by cursor."""

from __future__ import annotations

import asyncio

import httpx

from waybill.devstack.testing import eventually, start_service

from .conftest import Tenant, order_body


async def test_an_unpaid_order_expires_and_its_stock_is_released(tenant: Tenant, infra):
    short_lived = await asyncio.to_thread(
        start_service,
        infra,
        "orders",
        extra_env={
            # Long enough that the reservation is still there when we look at the stock below,
            # even on a loaded machine (1 s was not, under a parallel CI run).
            "WAYBILL_ORDERS_RESERVATION_TTL_S": "3",
            "WAYBILL_ORDERS_EXPIRY_INTERVAL_S": "0.3",
        },
    )
    try:
        await tenant.stock("EXP", 3)
        client = httpx.AsyncClient(base_url=short_lived.url, headers=tenant.service.headers)
        order = (await client.post("/orders", json=order_body("EXP", 2))).json()
        assert (await tenant.admin.get("/inventory/EXP")).json()["available"] == 1

        status = await _wait_for_status(tenant, order["id"], "expired", timeout_s=30)

        assert status == "expired"
        stock = (await tenant.admin.get("/inventory/EXP")).json()
        assert (stock["available"], stock["reserved"]) == (3, 0)
        events = (await tenant.service.get(f"/orders/{order['id']}/events")).json()["items"]
        assert [e["type"] for e in events] == ["order.placed", "order.expired"]
    finally:
        short_lived.process.stop()


async def test_orders_list_pages_through_every_order_once(tenant: Tenant):
    await tenant.stock("PAGE", 100)
    placed = [
        (await tenant.service.post("/orders", json=order_body("PAGE"))).json()["id"]
        for _ in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await tenant.service.get("/orders", params=params)).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(placed)
    assert len(seen) == len(set(seen))
    pending = (await tenant.service.get("/orders", params={"status": "pending_payment"})).json()
    assert len(pending["items"]) == 7
    paid = (await tenant.service.get("/orders", params={"status": "paid"})).json()
    assert paid["items"] == []


async def _wait_for_status(tenant: Tenant, order_id: str, wanted: str, timeout_s: float) -> str:
    async def status() -> str:
        return (await tenant.service.get(f"/orders/{order_id}")).json()["status"]  # type: ignore[no-any-return]

    return await eventually(
        status,
        until=lambda current: current == wanted,
        timeout_s=timeout_s,
        interval_s=0.2,
        what=f"order {order_id} {wanted}",
    )
