"""The shipments row is the fold of the shipment's stream, column by column, whatever happened
to it: every command writes the row from the same fold (handlers._commit)."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import select
from tests.shipping_stack import ShippingTenant

from waybill.common import topics
from waybill.common.contracts import shipping as contract
from waybill.common.db import create_engine
from waybill.common.eventstore import EventStore
from waybill.common.registry import EventRegistry
from waybill.common.settings import service_database
from waybill.devstack.testing import Infra
from waybill.shipping import tables
from waybill.shipping.domain import shipment as s


async def _run_paths(shipper: ShippingTenant) -> None:
    await shipper.configure(require_delivery_code=True, offer_wave_size=1)
    a, b = sorted([await shipper.add_agent(["FOLD"]) for _ in range(2)], key=lambda x: x.id)
    delivered, bounced, cancelled, waiting = [
        await shipper.order_paid(postal_code=code) for code in ("FOLD", "FOLD", "FOLD", "NONE")
    ]
    # delivered: a declines, b accepts, a wrong code, then the right one.
    offer = await a.offer_for(delivered)
    await a.client.post(f"/assignments/{offer['id']}/decline")
    offer = await b.offer_for(delivered)
    assert (await b.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    assert (await b.act(delivered, "ship")).status_code == 200
    code = await shipper.delivery_code(delivered)
    assert (
        await b.act(delivered, "deliver", code=f"{(int(code) + 1) % 10**6:06d}")
    ).status_code == 422
    assert (await b.act(delivered, "deliver", code=code)).status_code == 200
    # bounced: failed, returned, sent out again.
    offer = await a.offer_for(bounced)
    assert (await a.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    for action, body in (
        ("ship", {}),
        ("mark_failed", {"reason": "REFUSED"}),
        ("return_to_sender", {}),
        ("retry_delivery", {}),
    ):
        assert (await a.act(bounced, action, **body)).status_code == 200
    # cancelled while offered.
    await a.offer_for(cancelled)
    order_id = (await shipper.shipment(cancelled))["order_id"]
    await shipper.cancel_order(order_id)
    await shipper.wait_shipment(cancelled, until=lambda x: x["status"] == "cancelled")
    assert waiting


async def test_every_shipment_row_equals_the_fold_of_its_stream(
    shipper: ShippingTenant, infra: Infra
):
    await _run_paths(shipper)

    engine = create_engine(infra.settings().database_dsn(service_database("shipping")))
    store = EventStore(
        tables.events,
        tables.outbox,
        source="/waybill/shipping",
        topic=topics.SHIPPING_EVENTS,
        registry=contract.register(EventRegistry()),
    )
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(tables.shipments).where(tables.shipments.c.tenant_id == shipper.id)
                )
            ).all()
            assert len(rows) == 4
            for row in rows:
                recorded = await store.load(conn, row.shipment_id)
                state = s.fold(row.shipment_id, [r.typed() for r in recorded])  # type: ignore[misc]
                offer = state.offer
                assert {
                    "status": row.status,
                    "version": row.version,
                    "postal_code": row.postal_code,
                    "agent_id": row.agent_id,
                    "assignment_id": row.assignment_id,
                    "attempts": row.attempts,
                    "failure_reason": row.failure_reason,
                    "sla_due_at": row.sla_due_at,
                    "sla_breached": row.sla_breached,
                    "delivered_at": row.delivered_at,
                    "open_assignment_id": row.open_assignment_id,
                    "offer_expires_at": row.offer_expires_at,
                    "waves": row.waves,
                    "code_hash": row.code_hash,
                    "wrong_codes": row.wrong_codes,
                } == {
                    "status": state.status.value,
                    "version": state.version,
                    "postal_code": state.postal_code,
                    "agent_id": state.agent_id,
                    "assignment_id": state.assignment_id,
                    "attempts": state.attempts,
                    "failure_reason": state.failure_reason,
                    "sla_due_at": state.sla_due_at,
                    "sla_breached": state.sla_breached,
                    "delivered_at": state.delivered_at,
                    "open_assignment_id": offer.assignment_id if offer else None,
                    "offer_expires_at": offer.expires_at if offer else None,
                    "waves": state.waves,
                    "code_hash": state.code_hash,
                    "wrong_codes": state.wrong_codes,
                }, asdict(state)
    finally:
        await engine.dispose()
