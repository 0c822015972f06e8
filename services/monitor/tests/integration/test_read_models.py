"""The monitor's read models on real Kafka and PostgreSQL: events published as their services
would, figures read from ``/api/overview``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from tests.capacity_records import agent_events, profile, shipment_events

from waybill.common import topics
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.contracts.payments import PaymentCaptured, PaymentCreated, PaymentRefunded
from waybill.common.settings import service_database
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish, wait_caught_up
from waybill.devstack.testing import Infra, Tenant

pytestmark = pytest.mark.infra
GROUP = "monitor"


# What the overview reads live (the broker, the services), not from the read models.
LIVE = ("consumer_lag", "outbox_backlog", "circuit_breakers", "service_health")


async def overview(operator: Tenant) -> dict[str, Any]:
    """The tenant's read-model figures of ``/api/overview``."""
    answer = await operator.admin.get("/api/overview")
    assert answer.status_code == 200, answer.text
    return {name: value for name, value in answer.json().items() if name not in LIVE}


async def caught_up(infra: Infra, *topic_names: str) -> None:
    for topic in topic_names:
        await wait_caught_up(infra.bootstrap_servers, GROUP, topic)


def cancelled(operator: Tenant, order_id: str | None = None, sequence: int = 2) -> Any:
    order_id = order_id or f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason="customer asked")
    return envelope(event, tenant_id=operator.id, subject=order_id, sequence=sequence)


def payment_stream(operator: Tenant, amount: int = 1250, refund: int = 250) -> list[Any]:
    """A payment created (1), captured (2) and partly refunded (3), in version order."""
    payment_id, order_id = f"pay_{uuid.uuid4().hex}", f"ord_{uuid.uuid4().hex}"
    common = {"payment_id": payment_id, "order_id": order_id}
    events = [
        PaymentCreated(
            **common,
            amount_cents=amount,
            currency="EUR",
            payment_method="card",
            provider="sandbox",
        ),
        PaymentCaptured(
            **common,
            amount_cents=amount,
            currency="EUR",
            provider="sandbox",
            provider_payment_id="pi_1",
        ),
        PaymentRefunded(**common, amount_cents=refund, refund_id="re_1"),
    ]
    return [
        envelope(event, tenant_id=operator.id, subject=payment_id, sequence=n)
        for n, event in enumerate(events, start=1)
    ]


async def test_the_same_event_delivered_twice_is_counted_once(infra: Infra, operator: Tenant):
    twice = cancelled(operator)
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, twice, cancelled(operator), twice)
    await caught_up(infra, topics.ORDERS_EVENTS)

    figures = await overview(operator)

    assert figures["orders"]["by_status"] == {"cancelled": 2}


async def test_a_reordered_stream_ends_in_its_newest_status_with_every_amount_once(
    infra: Infra, operator: Tenant
):
    created, captured, refunded = payment_stream(operator, amount=1250, refund=250)
    # The refund (3) and the capture (2) arrive before the creation (1), the capture twice.
    await publish(
        infra.bootstrap_servers, topics.PAYMENTS_EVENTS, refunded, captured, created, captured
    )
    await caught_up(infra, topics.PAYMENTS_EVENTS)

    figures = await overview(operator)

    assert figures["payments"]["by_status"] == {"refunded": 1}
    assert figures["payments"]["by_provider"] == {"sandbox": {"refunded": 1}}
    assert figures["revenue"] == {
        "EUR": {"captured_cents": 1250, "refunded_cents": 250, "net_cents": 1000}
    }


async def test_an_older_event_does_not_move_a_status_back(infra: Infra, operator: Tenant):
    created, captured, _ = payment_stream(operator)
    await publish(infra.bootstrap_servers, topics.PAYMENTS_EVENTS, captured)
    await eventually(
        lambda: overview(operator),
        until=lambda f: f["payments"]["by_status"] == {"captured": 1},
        what="the capture projected",
    )
    await publish(infra.bootstrap_servers, topics.PAYMENTS_EVENTS, created)
    await caught_up(infra, topics.PAYMENTS_EVENTS)

    assert (await overview(operator))["payments"]["by_status"] == {"captured": 1}


async def test_rebuild_from_the_consumed_copy_gives_identical_figures_even_after_damage(
    infra: Infra, operator: Tenant
):
    await publish(
        infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled(operator), cancelled(operator)
    )
    await publish(infra.bootstrap_servers, topics.PAYMENTS_EVENTS, *payment_stream(operator))
    agent = f"agt_{uuid.uuid4().hex}"
    await publish(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        *agent_events(operator.id, agent, profile(2, ["10115"]), profile(3, ["10115"])),
        *shipment_events(operator.id, "10115", agent, "in_transit"),
    )
    await caught_up(infra, topics.ORDERS_EVENTS, topics.PAYMENTS_EVENTS, topics.SHIPPING_EVENTS)
    before = _projected(await overview(operator))
    assert before["orders"]["by_status"] == {"cancelled": 2}
    assert [a["active_shipments"] for a in before["capacity"]["agents"]] == [1]
    # Damage a read model the way a bug would: the rebuild must not depend on it.
    conn = await asyncpg.connect(infra.settings().asyncpg_dsn(service_database("monitor")))
    try:
        await conn.execute(
            "UPDATE order_states SET status = 'paid' WHERE tenant_id = $1", operator.id
        )
        await conn.execute(
            "UPDATE payment_states SET refunded_cents = 0 WHERE tenant_id = $1", operator.id
        )
        await conn.execute("UPDATE agent_states SET capacity = 1 WHERE tenant_id = $1", operator.id)
        await conn.execute(
            "UPDATE shipment_states SET agent_id = NULL WHERE tenant_id = $1", operator.id
        )
    finally:
        await conn.close()
    assert _projected(await overview(operator)) != before

    rebuilt = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "waybill.cli.main", "monitor", "rebuild"],
        env={**os.environ, **infra.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt from" in rebuilt.stdout
    assert _projected(await overview(operator)) == before


def _projected(figures: dict) -> dict:
    """The overview's figures that come from events (what a rebuild recomputes). Dead letters
    are records with a status of their own, not a projection: and the orders service of the
    session dead-letters these payment events (their orders are unknown there) whenever its
    retries end, before or after the rebuild."""
    return {name: value for name, value in figures.items() if name != "dead_letters"}


async def test_the_feed_lists_the_tenants_newest_events_only(
    infra: Infra, operator: Tenant, other: Tenant
):
    mine, theirs = cancelled(operator), cancelled(other)
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, mine, theirs)
    await caught_up(infra, topics.ORDERS_EVENTS)

    feed = (await operator.admin.get("/api/events")).json()["items"]

    assert [item["event_id"] for item in feed] == [str(mine.id)]
    assert feed[0]["type"] == "order.cancelled"
