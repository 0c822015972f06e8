"""Offers in waves: least loaded first, the next wave on expiry or when a wave all declined,
a new round after the last wave, and a shipment nobody can take waits until someone can
(a new agent, capacity freed). Every offer, decline and expiry is an event."""

from __future__ import annotations

import asyncio

from tests.shipping_stack import ShippingTenant

from waybill.devstack.eventually import eventually


def _types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


async def test_an_offer_that_runs_out_goes_to_the_next_wave(shipper: ShippingTenant):
    await shipper.configure(offer_wave_size=1, offer_ttl_s=1.5)
    first, second = sorted(
        [await shipper.add_agent(["W1"]), await shipper.add_agent(["W1"])], key=lambda a: a.id
    )
    shipment_id = await shipper.order_paid(postal_code="W1")

    offer_1 = await first.offer_for(shipment_id)  # equal load: the lower id first
    assert await second.offers() == []
    offer_2 = await second.offer_for(shipment_id, timeout_s=30)  # after 1.5 s, the next wave

    assert offer_2["id"] != offer_1["id"]
    assert (offer_1["wave"], offer_2["wave"]) == (1, 2)
    late = await first.client.post(f"/assignments/{offer_1['id']}/accept")
    assert (late.status_code, late.json()["code"]) == (409, "OFFER_EXPIRED")
    events = await shipper.events(shipment_id)
    assert _types(events)[:4] == [
        "shipment.created",
        "shipment.assignment_offered",
        "shipment.assignment_expired",
        "shipment.assignment_offered",
    ]
    assert events[2]["data"] == {
        "shipment_id": shipment_id,
        "assignment_id": offer_1["id"],
        "wave": 1,
    }


async def test_a_shipment_every_agent_declined_waits_for_a_new_agent(
    shipper: ShippingTenant,
):
    await shipper.configure(offer_wave_size=1)
    agents = sorted([await shipper.add_agent(["W2"]) for _ in range(3)], key=lambda x: x.id)
    shipment_id = await shipper.order_paid(postal_code="W2")

    for agent in agents:  # each one-agent wave declines: the next wave goes out at once
        offer = await agent.offer_for(shipment_id)
        declined = await agent.client.post(f"/assignments/{offer['id']}/decline", json={})
        assert declined.status_code == 200, declined.text

    events = await shipper.events(shipment_id)
    assert _types(events).count("shipment.assignment_declined") == 3
    assert _types(events)[-1] == "shipment.assignment_expired"  # the last wave closed
    shipment = await shipper.shipment(shipment_id)
    assert shipment["status"] == "pending" and shipment["agent_id"] is None
    newcomer = await shipper.add_agent(["W2"])
    await newcomer.offer_for(shipment_id)


async def test_a_new_round_goes_to_all_who_did_not_decline(shipper: ShippingTenant):
    await shipper.configure(offer_wave_size=1, offer_ttl_s=1)
    a, b = sorted([await shipper.add_agent(["W3"]) for _ in range(2)], key=lambda x: x.id)
    shipment_id = await shipper.order_paid(postal_code="W3")
    offer = await a.offer_for(shipment_id)
    await a.client.post(f"/assignments/{offer['id']}/decline")
    await b.offer_for(shipment_id)  # wave 2: b (a declined)

    async def waves() -> list[dict]:
        return [
            e
            for e in await shipper.events(shipment_id)
            if e["type"] == "shipment.assignment_offered"
        ]

    # b's wave runs out: the next round is b again (a declined), as long as b does not take it.
    offered = await eventually(waves, until=lambda w: len(w) >= 3, timeout_s=30, what="round 2")
    assert [w["data"]["agent_ids"] for w in offered[:3]] == [[a.id], [b.id], [b.id]]


async def test_a_shipment_nobody_can_take_waits_and_is_offered_when_an_agent_can(
    shipper: ShippingTenant,
):
    shipment_id = await shipper.order_paid(postal_code="NOBODY")
    await shipper.consumed()
    assert _types(await shipper.events(shipment_id)) == ["shipment.created"]

    agent = await shipper.add_agent(["nobody"])  # postal codes compare without case/spaces

    offer = await agent.offer_for(shipment_id)
    assert offer["postal_code"] == "NOBODY"


async def test_freed_capacity_offers_the_waiting_shipment(shipper: ShippingTenant):
    agent = await shipper.add_agent(["CAP1"], capacity=1)
    first = await shipper.order_paid(postal_code="CAP1")
    offer = await agent.offer_for(first)
    assert (await agent.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200
    second = await shipper.order_paid(postal_code="CAP1")
    await shipper.consumed()
    assert await agent.offers() == []  # at capacity: not eligible

    assert (await agent.act(first, "ship")).status_code == 200
    assert (await agent.act(first, "deliver")).status_code == 200

    await agent.offer_for(second)


async def test_an_agent_at_capacity_cannot_accept_an_older_offer(shipper: ShippingTenant):
    agent = await shipper.add_agent(["CAP2"], capacity=1)
    one, two = await asyncio.gather(
        shipper.order_paid(postal_code="CAP2"), shipper.order_paid(postal_code="CAP2")
    )
    offers = [await agent.offer_for(one), await agent.offer_for(two)]

    assert (await agent.client.post(f"/assignments/{offers[0]['id']}/accept")).status_code == 200
    refused = await agent.client.post(f"/assignments/{offers[1]['id']}/accept")

    assert (refused.status_code, refused.json()["code"]) == (409, "AGENT_AT_CAPACITY")


async def test_an_agent_off_shift_is_not_offered_anything(shipper: ShippingTenant):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    later = now + timedelta(hours=3)
    off_shift = {
        "weekday": later.weekday(),
        "start": later.strftime("%H:00"),
        "end": (later + timedelta(hours=1)).strftime("%H:00"),
    }
    resting = await shipper.add_agent(["SHIFT"], shifts=[off_shift])
    working = await shipper.add_agent(["SHIFT"])
    shipment_id = await shipper.order_paid(postal_code="SHIFT")

    await working.offer_for(shipment_id)
    assert await resting.offers() == []


async def test_an_assignment_that_was_not_offered_to_the_agent_is_not_found(
    shipper: ShippingTenant,
):
    offered = await shipper.add_agent(["ONLY"])
    elsewhere = await shipper.add_agent(["OTHER"])
    shipment_id = await shipper.order_paid(postal_code="ONLY")
    offer = await offered.offer_for(shipment_id)

    response = await elsewhere.client.post(f"/assignments/{offer['id']}/accept")

    assert (response.status_code, response.json()["code"]) == (404, "ASSIGNMENT_NOT_FOUND")
