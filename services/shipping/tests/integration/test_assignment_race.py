"""Agents racing for one assignment: exactly one wins, every other one gets a 409, and the
winner is the assignee the shipment's stream records (CONTRACT.md § shipping, accept)."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.shipping_stack import ShippingTenant

ROUNDS = 50
AGENTS = 8


async def test_eight_agents_accepting_one_assignment_yield_one_winner_per_round(
    shipper: ShippingTenant,
):
    agents = [await shipper.add_agent(["R4CE"], capacity=ROUNDS) for _ in range(AGENTS)]
    outcomes: Counter[str] = Counter()
    winners_per_round: list[int] = []
    for _ in range(ROUNDS):
        shipment_id = await shipper.order_paid(postal_code="R4CE")
        offers = await asyncio.gather(*(agent.offer_for(shipment_id) for agent in agents))
        assert len({offer["id"] for offer in offers}) == 1  # one assignment id for the wave
        assignment_id = offers[0]["id"]

        responses = await asyncio.gather(
            *(agent.client.post(f"/assignments/{assignment_id}/accept") for agent in agents)
        )

        winners = [a for a, r in zip(agents, responses, strict=True) if r.status_code == 200]
        losers = [r for r in responses if r.status_code != 200]
        winners_per_round.append(len(winners))
        assert len(winners) == 1, [r.text for r in responses]
        assert {r.status_code for r in losers} == {409}
        outcomes.update(r.json()["code"] for r in losers)
        accepted = [
            e
            for e in await shipper.events(shipment_id)
            if e["type"] == "shipment.assignment_accepted"
        ]
        assert [e["data"]["agent_id"] for e in accepted] == [winners[0].id]
        assert (await shipper.shipment(shipment_id))["agent_id"] == winners[0].id
        # The winner asking again: 200 and nothing new.
        again = await winners[0].client.post(f"/assignments/{assignment_id}/accept")
        assert again.status_code == 200
    events_after = [e["type"] for e in await shipper.events(shipment_id)]
    assert events_after.count("shipment.assignment_accepted") == 1

    assert winners_per_round == [1] * ROUNDS
    assert set(outcomes) <= {"ASSIGNMENT_CONFLICT", "ASSIGNMENT_ALREADY_ACCEPTED"}
    print(
        f"\nassignment race: {ROUNDS} rounds x {AGENTS} agents -> {sum(winners_per_round)} winners,"
        f" {sum(outcomes.values())} conflicts ({dict(outcomes)})"
    )
