"""The monitor's capacity view (``/api/overview`` ``capacity``) against shipping's own
``GET /capacity``: real shipping and monitor processes on real Kafka and PostgreSQL, agents
registered and changed through shipping's API, shipments driven from ``order.paid`` to
delivery; then the same records again, reordered events, and a rebuild."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.capacity_records import agent_events, profile, shipment_events
from tests.monitor_stack import produce
from tests.shipping_stack import ShippingTenant

from waybill.common import topics
from waybill.devstack.eventually import eventually
from waybill.devstack.records import publish, read_records, wait_caught_up
from waybill.devstack.testing import Infra, ServiceProcess, Tenant

pytestmark = pytest.mark.infra
GROUP = "monitor"


@pytest.fixture
async def monitor_of(
    shipper: ShippingTenant, monitor_service: ServiceProcess
) -> AsyncIterator[httpx.AsyncClient]:
    """The shipping tenant's admin key on the monitor (one auth database for every service)."""
    async with httpx.AsyncClient(
        base_url=monitor_service.url,
        headers={"Authorization": shipper.admin.headers["authorization"]},
        timeout=30,
    ) as client:
        yield client


async def monitor_capacity(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/api/overview")
    assert answer.status_code == 200, answer.text
    return answer.json()["capacity"]  # type: ignore[no-any-return]


async def shipping_capacity(shipper: ShippingTenant) -> dict[str, Any]:
    answer = await shipper.admin.get("/capacity")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def equal_once_consumed(
    infra: Infra, shipper: ShippingTenant, client: httpx.AsyncClient
) -> dict[str, Any]:
    """Shipping's answer, once the monitor's equals it (then caught up, and equal still)."""
    truth = await shipping_capacity(shipper)
    await eventually(
        lambda: monitor_capacity(client),
        until=lambda figures: figures == truth,
        timeout_s=60,
        what="the monitor's capacity equal to shipping's",
    )
    await wait_caught_up(infra.bootstrap_servers, GROUP, topics.SHIPPING_EVENTS)
    assert await monitor_capacity(client) == truth
    return truth


async def deliver(shipper: ShippingTenant, agent: Any, shipment_id: str, *steps: str) -> None:
    offer = await agent.offer_for(shipment_id)
    accepted = await agent.client.post(f"/assignments/{offer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    for step in steps:
        body = {"reason": "RECIPIENT_ABSENT"} if step == "mark_failed" else {}
        done = await agent.act(shipment_id, step, **body)
        assert done.status_code == 200, done.text


async def test_the_monitors_capacity_equals_shippings_through_redelivery_and_rebuild(
    infra: Infra, shipper: ShippingTenant, monitor_of: httpx.AsyncClient
):
    busy = await shipper.add_agent(["11111", "22222"], capacity=2, name="Ada")
    spare = await shipper.add_agent(["11111"], capacity=1, name="Grace")
    gone = await shipper.add_agent(["33333"], capacity=3, name="Linus")
    grown = await shipper.add_agent(["22222"], capacity=1, name="Barbara")
    for agent_id, change in ((gone.id, {"active": False}), (grown.id, {"capacity": 4})):
        changed = await shipper.admin.patch(f"/agents/{agent_id}", json=change)
        assert changed.status_code == 200, changed.text

    delivered = await shipper.order_paid(postal_code="11111")
    await deliver(shipper, busy, delivered, "ship", "deliver")  # no longer active
    failed = await shipper.order_paid(postal_code="11111")
    await deliver(shipper, busy, failed, "ship", "mark_failed")  # failed: still active
    returned = await shipper.order_paid(postal_code="11111")
    await deliver(shipper, spare, returned, "ship", "return_to_sender")  # returned: not active
    retried = await shipper.order_paid(postal_code="11111")
    await deliver(shipper, spare, retried, "mark_failed", "return_to_sender", "retry_delivery")
    assigned = await shipper.order_paid(postal_code="22222")
    await deliver(shipper, grown, assigned)  # accepted, still pending: active
    await shipper.order_paid(postal_code="44444")  # nobody serves it: waits, a load all the same

    truth = await equal_once_consumed(infra, shipper, monitor_of)
    by_code = {code["postal_code"]: code for code in truth["postal_codes"]}
    assert set(by_code) == {"11111", "22222", "44444"}  # 33333's only agent is inactive
    assert by_code["11111"] | {"utilisation": None} == {
        "postal_code": "11111",
        "agents": 2,
        "active_shipments": 2,  # the failed one and the retried one
        "capacity": 3,
        "utilisation": None,
        "hotspot": False,
    }
    assert by_code["44444"]["hotspot"] is True  # a load and no capacity
    assert {a["id"]: a["active_shipments"] for a in truth["agents"]} == {
        busy.id: 1,
        spare.id: 1,
        gone.id: 0,
        grown.id: 1,
    }
    assert {a["id"]: a["capacity"] for a in truth["agents"]}[grown.id] == 4

    # Every record of the tenant on shipping's topic again, newest first: nothing moves.
    records = await read_records(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        lambda r: r.headers.get("ce_tenantid") == shipper.id,
    )
    assert {r.headers["ce_type"] for r in records} >= {"agent.registered", "agent.updated"}
    assert not any("api_key" in r.data or "key_id" in r.data for r in records)
    for record in reversed(records):
        await produce(
            infra,
            topics.SHIPPING_EVENTS,
            key=record.key,
            value=json.dumps(record.data).encode(),
            headers=[(name, text.encode()) for name, text in record.headers.items()],
        )
    await wait_caught_up(infra.bootstrap_servers, GROUP, topics.SHIPPING_EVENTS)
    assert await monitor_capacity(monitor_of) == truth

    await rebuild(infra)
    assert await monitor_capacity(monitor_of) == truth


async def rebuild(infra: Infra) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "waybill.cli.main", "monitor", "rebuild"],
        env={**os.environ, **infra.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


# --- the monitor alone: events as shipping publishes them, out of order -----------------------


async def test_reordered_and_repeated_events_count_once_in_their_newest_state(
    infra: Infra, operator: Tenant
):
    agent = f"agt_{uuid.uuid4().hex}"
    registered, grown, shrunk = agent_events(
        operator.id,
        agent,
        profile(1, ["10115"]),
        profile(5, ["10115", "10117"]),
        profile(4, ["10115", "10117"]),
    )
    delivered = shipment_events(operator.id, "10115", agent, "in_transit", "delivered")
    failed = shipment_events(operator.id, "10117", agent, "in_transit", "failed")
    assigned = shipment_events(operator.id, "10115", agent)  # accepted, still pending
    # Out of order, and some twice: the guard keeps each row's newest state, the inbox one
    # copy; an acceptance (no status of its own) names the agent and leaves the status alone.
    await publish(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        grown,
        *reversed(delivered),
        shrunk,
        *reversed(failed),
        registered,
        *assigned,
        failed[1],
        shrunk,
    )
    await wait_caught_up(infra.bootstrap_servers, GROUP, topics.SHIPPING_EVENTS)

    answer = await operator.admin.get("/api/overview")
    assert answer.status_code == 200, answer.text

    assert answer.json()["capacity"] == {
        "postal_codes": [
            {
                "postal_code": "10115",
                "agents": 1,
                "active_shipments": 1,
                "capacity": 4,
                "utilisation": 0.25,
                "hotspot": False,
            },
            {
                "postal_code": "10117",
                "agents": 1,
                "active_shipments": 1,
                "capacity": 4,
                "utilisation": 0.25,
                "hotspot": False,
            },
        ],
        "agents": [
            {"id": agent, "name": "Ada", "active_shipments": 2, "capacity": 4, "utilisation": 0.5}
        ],
    }


async def test_a_tenant_sees_only_its_own_agents_and_shipments(
    infra: Infra, operator: Tenant, other: Tenant
):
    agent = f"agt_{uuid.uuid4().hex}"
    await publish(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        *agent_events(other.id, agent, profile(1, ["75001"])),
        *shipment_events(other.id, "75001", agent, "in_transit"),
    )
    await wait_caught_up(infra.bootstrap_servers, GROUP, topics.SHIPPING_EVENTS)

    mine = (await operator.admin.get("/api/overview")).json()["capacity"]
    theirs = (await other.admin.get("/api/overview")).json()["capacity"]

    assert mine == {"postal_codes": [], "agents": []}
    assert theirs["postal_codes"][0]["hotspot"] is True  # 1 of 1: utilisation 1.0
    assert [a["id"] for a in theirs["agents"]] == [agent]
