"""SLA: every shipment not delivered by sla_due_at is reported once (shipment.sla_breached);
one delivered late reports it with the delivery; one delivered in time never."""

from __future__ import annotations

from tests.shipping_stack import ShippingTenant

from waybill.devstack.eventually import eventually

ONE_SECOND_H = 1 / 3600


async def _breaches(shipper: ShippingTenant, shipment_id: str) -> list[dict]:
    return [e for e in await shipper.events(shipment_id) if e["type"] == "shipment.sla_breached"]


async def test_a_shipment_not_delivered_in_time_is_reported_once(shipper: ShippingTenant):
    await shipper.configure(sla_hours=ONE_SECOND_H)
    shipment_id = await shipper.order_paid(postal_code="SLOW")

    breaches = await eventually(
        lambda: _breaches(shipper, shipment_id), timeout_s=30, what="an SLA breach"
    )
    # The job keeps running (every 0.5 s here): still exactly one report three turns later.
    turns = await _sla_runs(shipper)
    await eventually(
        lambda: _sla_runs(shipper), until=lambda n: n >= turns + 3, timeout_s=30, what="3 turns"
    )
    shipment = await shipper.shipment(shipment_id)
    assert len(breaches) == 1
    assert breaches[0]["data"]["status"] == "pending"
    assert shipment["sla_breached"] is True
    assert len(await _breaches(shipper, shipment_id)) == 1


async def test_a_shipment_delivered_in_time_is_never_reported(shipper: ShippingTenant):
    """(A delivery after the due time reports the breach itself: the decider's unit tests.)"""
    agent = await shipper.add_agent(["SLA"])
    await shipper.configure(sla_hours=24)
    early = await shipper.order_paid(postal_code="SLA")
    offer = await agent.offer_for(early)
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    assert (await agent.act(early, "ship")).status_code == 200
    assert (await agent.act(early, "deliver")).status_code == 200

    assert await _breaches(shipper, early) == []
    assert (await shipper.shipment(early))["sla_breached"] is False


async def _sla_runs(shipper: ShippingTenant) -> float:
    """Finished turns of the SLA job in the shipping process (its Prometheus counter)."""
    text = (await shipper.admin.get("/metrics")).text
    prefix = 'waybill_periodic_job_runs_total{job="shipment-sla",outcome="succeeded"'
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )
