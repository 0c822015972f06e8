"""The order-payment saga under faults: provider outage, 429 storm, injected errors, a killed
payments process and a broker restart. Every order still settles, and is charged exactly once.

All processes are real (orders, payments, the sandbox provider, Kafka, PostgreSQL); faults are
set through the sandbox's admin API and reset after each test.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import Saga

from waybill.devstack.testing import Infra, eventually

from .saga_support import (
    SETTLED,
    breaker_state,
    charges_per_order,
    place_orders,
    reset_faults,
    set_faults,
    wait_orders,
)


@pytest.fixture
async def faults(saga: Saga) -> AsyncIterator[Saga]:
    await reset_faults(saga)
    yield saga
    if not saga.sandbox.process.is_running():
        await asyncio.to_thread(saga.sandbox.restart)
    if not saga.payments.process.is_running():
        await asyncio.to_thread(saga.payments.restart)
    await reset_faults(saga)


async def test_orders_wait_out_a_provider_outage_and_settle_once_it_returns(
    faults: Saga, tenant: Tenant
):
    saga = faults
    await tenant.stock("OUTAGE", 100)
    await asyncio.to_thread(saga.sandbox.stop)
    down_at = time.monotonic()
    order_ids = await place_orders(tenant, 12, sku="OUTAGE")

    opened = await _wait_for(lambda: breaker_state(saga), lambda s: s == 2, timeout_s=60)
    assert opened == 2, f"breaker state {opened} while the provider is down"
    still = await wait_orders(tenant, order_ids, statuses=SETTLED, timeout_s=1)
    assert set(still.values()) == {"pending_payment"}, (
        "nothing may settle or fail during the outage"
    )

    await asyncio.to_thread(saga.sandbox.restart)
    up_at = time.monotonic()
    statuses = await wait_orders(tenant, order_ids, statuses=SETTLED, timeout_s=120)
    settled_in = time.monotonic() - up_at

    assert set(statuses.values()) == {"paid"}, statuses
    assert set((await charges_per_order(saga, order_ids)).values()) == {1}
    print(
        f"\noutage {up_at - down_at:.1f}s: breaker opened, {len(order_ids)} orders waited; "
        f"all paid {settled_in:.1f}s after the provider returned, one charge each"
    )


async def test_a_429_storm_is_retried_no_sooner_than_retry_after(faults: Saga, tenant: Tenant):
    saga = faults
    await tenant.stock("STORM", 100)
    await set_faults(saga, rate_limit_rate=0.6, retry_after_s=1)
    order_ids = await place_orders(tenant, 10, sku="STORM")

    statuses = await wait_orders(tenant, order_ids, statuses=SETTLED, timeout_s=120)

    assert set(statuses.values()) == {"paid"}, statuses
    assert set((await charges_per_order(saga, order_ids)).values()) == {1}
    async with saga.sandbox_client() as sandbox:
        requests = (await sandbox.get("/admin/requests", params={"limit": 5000})).json()
    by_key: dict[str, list[dict]] = {}
    for request in requests:
        if request["method"] == "POST" and request["path"] == "/v1/payment_intents":
            by_key.setdefault(request["idempotency_key"], []).append(request)
    limited = 0
    for attempts in by_key.values():
        for earlier, later in itertools.pairwise(attempts):
            if earlier["fault"] == "rate_limit":
                limited += 1
                assert later["at"] - earlier["at"] >= 0.95, (earlier, later)
    assert limited > 0, "the storm never hit: the test proved nothing"
    print(f"\n429 storm: {limited} rate-limited attempts, each retried >= Retry-After later")


async def test_thirty_percent_injected_failures_still_settle_every_order_once(
    faults: Saga, tenant: Tenant
):
    saga = faults
    await tenant.stock("FLAKY", 100)
    await set_faults(saga, error_rate=0.15, reset_rate=0.1, timeout_rate=0.05)
    order_ids = await place_orders(tenant, 30, sku="FLAKY")

    statuses = await wait_orders(tenant, order_ids, statuses=SETTLED, timeout_s=180)

    assert set(statuses.values()) == {"paid"}, statuses
    assert set((await charges_per_order(saga, order_ids)).values()) == {1}


async def test_a_killed_payments_process_loses_no_order_and_charges_none_twice(
    faults: Saga, tenant: Tenant
):
    saga = faults
    await tenant.stock("KILL", 100)
    await set_faults(saga, latency_ms=300)  # keeps charges in flight when the kill lands
    order_ids = await place_orders(tenant, 50, sku="KILL")
    await _wait_for(lambda: _charges_started(saga), lambda n: n >= 5, timeout_s=60)

    saga.payments.kill()  # SIGKILL mid-flight
    await set_faults(saga, latency_ms=0)
    await asyncio.to_thread(saga.payments.restart)
    statuses = await wait_orders(tenant, order_ids, statuses=SETTLED, timeout_s=180)

    assert set(statuses.values()) == {"paid"}, statuses
    assert set((await charges_per_order(saga, order_ids)).values()) == {1}


async def test_a_broker_restart_mid_saga_settles_every_order_exactly_once(
    faults: Saga, tenant: Tenant, infra: Infra
):
    saga = faults
    await tenant.stock("BROKER", 100)
    first = await place_orders(tenant, 15, sku="BROKER")
    await asyncio.to_thread(infra.stop_kafka)
    during = await place_orders(tenant, 15, sku="BROKER")
    await asyncio.to_thread(infra.start_kafka)
    order_ids = first + during

    statuses = await wait_orders(tenant, order_ids, statuses=SETTLED, timeout_s=180)

    assert set(statuses.values()) == {"paid"}, statuses
    assert set((await charges_per_order(saga, order_ids)).values()) == {1}
    for order_id in order_ids:
        events = (await tenant.service.get(f"/orders/{order_id}/events")).json()["items"]
        assert [e["type"] for e in events] == ["order.placed", "order.paid"], events


async def _charges_started(saga: Saga) -> int:
    async with saga.sandbox_client() as sandbox:
        requests = (await sandbox.get("/admin/requests", params={"limit": 5000})).json()
    return sum(1 for r in requests if r["path"] == "/v1/payment_intents")


async def _wait_for(probe, done, timeout_s: float):
    """``probe`` until ``done``; a service restarting in between answers nothing (not yet)."""
    return await eventually(
        probe,
        until=lambda value: value is not None and done(value),
        timeout_s=timeout_s,
        interval_s=0.2,
        ignoring=(httpx.HTTPError,),
    )
