"""The agent directory: an agent gets its key once, changes take effect for dispatch, the
capacity view shows load and hotspots, finding who serves a postal code uses the GIN index, and
every change is an event of the agent's stream (published, without its key)."""

from __future__ import annotations

import json

import asyncpg
from tests.shipping_stack import ShippingTenant

from waybill.common import topics
from waybill.common.settings import service_database
from waybill.devstack.eventually import eventually
from waybill.devstack.records import read_records
from waybill.devstack.testing import Infra


async def test_an_agent_gets_its_key_once_and_acts_with_it(shipper: ShippingTenant):
    agent = await shipper.add_agent(["K1", "k 2"], capacity=3)

    assert agent.body["api_key"].startswith("wb_")
    assert agent.body["service_zip_codes"] == ["K1", "K2"]  # normalised
    shown = await shipper.admin.get(f"/agents/{agent.id}")
    assert shown.status_code == 200 and "api_key" not in shown.json()
    assert (await agent.client.get("/assignments")).status_code == 200
    # Agents cannot manage agents; admins of other tenants do not see this one.
    assert (await agent.client.get("/agents")).status_code == 403
    listed = (await shipper.admin.get("/agents")).json()["items"]
    assert [a["id"] for a in listed] == [agent.id]


async def test_patching_an_agent_changes_what_it_is_offered(shipper: ShippingTenant):
    agent = await shipper.add_agent(["P1"])
    waiting = await shipper.order_paid(postal_code="P2")

    patched = await shipper.admin.patch(f"/agents/{agent.id}", json={"service_zip_codes": ["P2"]})

    assert patched.status_code == 200, patched.text
    await agent.offer_for(waiting)
    off = await shipper.admin.patch(f"/agents/{agent.id}", json={"active": False})
    assert off.json()["active"] is False
    later = await shipper.order_paid(postal_code="P2")
    await shipper.consumed()
    assert later not in {o["shipment_id"] for o in await agent.offers()}
    unknown = await shipper.admin.patch(f"/agents/agt_{'0' * 32}", json={"active": True})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "AGENT_NOT_FOUND")


async def test_bad_agent_bodies_are_refused_with_a_problem(shipper: ShippingTenant):
    for body in (
        {"name": "x", "service_zip_codes": []},
        {"name": "x", "service_zip_codes": ["A1"], "capacity": 0},
        {
            "name": "x",
            "service_zip_codes": ["A1"],
            "shifts": [{"weekday": 7, "start": "09:00", "end": "17:00"}],
        },
        {
            "name": "x",
            "service_zip_codes": ["A1"],
            "shifts": [{"weekday": 1, "start": "9:00", "end": "17:00"}],
        },
        {"name": "x", "service_zip_codes": ["A1"], "colour": "red"},
    ):
        response = await shipper.admin.post("/agents", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert (await shipper.admin.get("/agents")).json()["items"] == []


async def test_the_capacity_view_shows_load_and_hotspots(shipper: ShippingTenant):
    busy = await shipper.add_agent(["HOT"], capacity=2)
    await shipper.add_agent(["COLD"], capacity=5)
    for _ in range(2):
        shipment_id = await shipper.order_paid(postal_code="HOT")
        offer = await busy.offer_for(shipment_id)
        assert (await busy.client.post(f"/assignments/{offer['id']}/accept")).status_code == 200

    view = (await shipper.admin.get("/capacity")).json()

    by_code = {p["postal_code"]: p for p in view["postal_codes"]}
    assert by_code["HOT"] == {
        "postal_code": "HOT",
        "agents": 1,
        "active_shipments": 2,
        "capacity": 2,
        "utilisation": 1.0,
        "hotspot": True,
    }
    assert by_code["COLD"]["hotspot"] is False and by_code["COLD"]["utilisation"] == 0.0
    loads = {a["id"]: a for a in view["agents"]}
    assert loads[busy.id]["utilisation"] == 1.0


async def test_the_postal_code_lookup_uses_the_gin_index(infra: Infra, shipping_service):
    """EXPLAIN of the dispatcher's statement over a directory of 20,000 agents."""
    from sqlalchemy.dialects import postgresql

    from waybill.shipping.repository import serving_zip

    conn = await asyncpg.connect(infra.settings().asyncpg_dsn(service_database("shipping")))
    try:
        await conn.execute(
            "INSERT INTO agents (agent_id, tenant_id, name, service_zip_codes, capacity)"
            " SELECT 'agt_explain_' || g, 't_explain', 'a', ARRAY['Z' || (g % 5000)], 5"
            " FROM generate_series(1, 20000) g ON CONFLICT DO NOTHING"
        )
        await conn.execute("ANALYZE agents")
        compiled = serving_zip("t_explain", "Z42").compile(
            dialect=postgresql.asyncpg.dialect(), compile_kwargs={"literal_binds": True}
        )
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {compiled}"))
    finally:
        await conn.close()
    print(f"\nEXPLAIN of the postal-code lookup:\n{plan}")
    assert "ix_agents_zip_codes" in plan, plan
    assert "Seq Scan on agents" not in plan, plan


async def test_every_change_of_an_agent_is_an_event_of_its_stream_without_its_key(
    infra: Infra, shipper: ShippingTenant
):
    agent = await shipper.add_agent(["E1"], capacity=2, name="Ada")
    for change in ({"capacity": 5}, {"active": False, "service_zip_codes": ["e 2", "E1"]}):
        patched = await shipper.admin.patch(f"/agents/{agent.id}", json=change)
        assert patched.status_code == 200, patched.text
    refused = await shipper.admin.patch(f"/agents/{agent.id}", json={"capacity": 0})
    assert refused.status_code == 422  # and nothing appended

    conn = await asyncpg.connect(infra.settings().asyncpg_dsn(service_database("shipping")))
    try:
        stored = await conn.fetch(
            "SELECT version, type, tenant_id, data FROM events WHERE stream_id = $1"
            " ORDER BY version",
            agent.id,
        )
    finally:
        await conn.close()
    published = await eventually(
        lambda: read_records(
            infra.bootstrap_servers, topics.SHIPPING_EVENTS, lambda r: r.key == agent.id.encode()
        ),
        until=lambda found: len(found) == 3,
        what="the agent's events on Kafka",
    )

    assert [(r["version"], r["type"]) for r in stored] == [
        (1, "agent.registered"),
        (2, "agent.updated"),
        (3, "agent.updated"),
    ]
    assert {r["tenant_id"] for r in stored} == {shipper.id}
    profiles = [json.loads(r["data"]) for r in stored]
    assert profiles[-1] == {
        "agent_id": agent.id,
        "name": "Ada",
        "capacity": 5,
        "service_zip_codes": ["E1", "E2"],
        "active": False,
        "shifts": [],
    }
    assert [(r.headers["ce_sequence"], r.headers["ce_type"]) for r in published] == [
        ("1", "agent.registered"),
        ("2", "agent.updated"),
        ("3", "agent.updated"),
    ]
    assert [r.data for r in published] == profiles
    key = agent.body["api_key"]
    assert not any(key in json.dumps(p) or "key" in "".join(p) for p in profiles)
