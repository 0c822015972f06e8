"""The state machine over HTTP: every valid path moves the shipment (and its stream), every
other request is 409 INVALID_TRANSITION naming the current status and writes nothing; retries
are bounded; only the assigned agent acts, and nobody else sees its shipments."""

from __future__ import annotations

from tests.shipping_stack import DeliveryAgent, ShippingTenant

from waybill.shipping.domain.shipment import TRANSITIONS, Action

AGENT_ACTIONS = [a for a in Action if a is not Action.cancel]


async def _assigned(shipper: ShippingTenant, zip_code: str) -> tuple[DeliveryAgent, str]:
    agent = await shipper.add_agent([zip_code])
    shipment_id = await shipper.order_paid(postal_code=zip_code)
    offer = await agent.offer_for(shipment_id)
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    return agent, shipment_id


async def _do(agent: DeliveryAgent, shipment_id: str, action: Action):
    body = {"reason": "RECIPIENT_ABSENT"} if action is Action.mark_failed else {}
    return await agent.act(shipment_id, action.value, **body)


# Paths from pending (assigned) to each status; the last step's status is the one tested.
PATHS: dict[str, list[Action]] = {
    "pending": [],
    "in_transit": [Action.ship],
    "delivered": [Action.ship, Action.deliver],
    "failed": [Action.ship, Action.mark_failed],
    "returned": [Action.ship, Action.return_to_sender],
}


async def test_every_action_the_table_does_not_allow_is_refused_and_writes_nothing(
    shipper: ShippingTenant,
):
    for n, (status, path) in enumerate(PATHS.items()):
        agent, shipment_id = await _assigned(shipper, f"TRANS{n}")
        for step in path:
            assert (await _do(agent, shipment_id, step)).status_code == 200
        before = await shipper.events(shipment_id)
        assert (await shipper.shipment(shipment_id))["status"] == status
        for action in AGENT_ACTIONS:
            sources, _ = TRANSITIONS[action]
            if status in {s.value for s in sources}:
                continue
            refused = await _do(agent, shipment_id, action)
            assert refused.status_code == 409, (status, action, refused.text)
            problem = refused.json()
            assert problem["code"] == "INVALID_TRANSITION"
            assert problem["current_status"] == status
            assert status in problem["detail"]
        assert await shipper.events(shipment_id) == before  # nothing appended


async def test_failed_then_returned_then_retried_until_the_attempts_run_out(
    shipper: ShippingTenant,
):
    agent, shipment_id = await _assigned(shipper, "RETRY")
    steps = [
        (Action.ship, "in_transit", 1),
        (Action.mark_failed, "failed", 1),
        (Action.retry_delivery, "in_transit", 2),
        (Action.return_to_sender, "returned", 2),
        (Action.retry_delivery, "in_transit", 3),
        (Action.mark_failed, "failed", 3),
    ]
    for action, status, attempts in steps:
        response = await _do(agent, shipment_id, action)
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["attempts"]) == (status, attempts)

    exhausted = await _do(agent, shipment_id, Action.retry_delivery)
    returned = await _do(agent, shipment_id, Action.return_to_sender)

    assert (exhausted.status_code, exhausted.json()["code"]) == (409, "DELIVERY_ATTEMPTS_EXHAUSTED")
    assert returned.json()["status"] == "returned"
    failed = [e for e in await shipper.events(shipment_id) if e["type"] == "shipment.failed"]
    assert [e["data"]["reason"] for e in failed] == ["RECIPIENT_ABSENT"] * 2


async def test_mark_failed_needs_a_reason_from_the_contract(shipper: ShippingTenant):
    agent, shipment_id = await _assigned(shipper, "REASON")

    missing = await agent.act(shipment_id, "mark_failed")
    unknown = await agent.act(shipment_id, "mark_failed", reason="LOST_IN_SPACE")
    ok = await agent.act(shipment_id, "mark_failed", reason="WEATHER", notes="storm")

    assert (missing.status_code, unknown.status_code) == (422, 422)
    assert ok.status_code == 200 and ok.json()["failure_reason"] == "WEATHER"


async def test_only_the_assigned_agent_acts_and_sees_the_shipment(shipper: ShippingTenant, infra):
    from tests.shipping_stack import ShippingTenant as Tenant

    from waybill.devstack.testing import new_tenant

    agent, shipment_id = await _assigned(shipper, "MINE")
    colleague = await shipper.add_agent(["MINE"])
    other = await new_tenant(infra, str(shipper.admin.base_url))
    stranger_tenant = Tenant(other.id, other.admin, other.service, other.agent, infra=infra)
    stranger = await stranger_tenant.add_agent(["MINE"])
    try:
        for outsider in (colleague, stranger):
            assert (await outsider.act(shipment_id, "ship")).status_code == 404
            assert (await outsider.client.get(f"/shipments/{shipment_id}")).status_code == 404
            events = await outsider.client.get(f"/shipments/{shipment_id}/events")
            assert events.status_code == 404
            listed = (await outsider.client.get("/shipments")).json()["items"]
            assert shipment_id not in {s["id"] for s in listed}
        assert (await stranger_tenant.admin.get(f"/shipments/{shipment_id}")).status_code == 404
        # The service role has no business here; the assignee and the admin do.
        assert (await shipper.service.get(f"/shipments/{shipment_id}")).status_code == 403
        assert (await agent.client.get(f"/shipments/{shipment_id}")).status_code == 200
        assert (await agent.act(shipment_id, "ship")).status_code == 200
    finally:
        await stranger_tenant.aclose()
