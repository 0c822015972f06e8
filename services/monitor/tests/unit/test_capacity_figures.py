"""The capacity view's rules (``waybill.common.contracts.capacity``), the same as shipping's
``GET /capacity``: which postal codes are listed, whose capacity counts, when a code is a
hotspot; and what the projection rules take from shipping's events."""

from __future__ import annotations

from datetime import UTC, datetime

from waybill.common.contracts import shipping as contract
from waybill.common.contracts.capacity import AgentCapacity, capacity_figures
from waybill.monitor import tables
from waybill.monitor.projections import RULES, StreamEvent


def agent(
    agent_id: str,
    capacity: int,
    zips: tuple[str, ...],
    active_shipments: int = 0,
    *,
    active: bool = True,
) -> AgentCapacity:
    return AgentCapacity(agent_id, agent_id.title(), capacity, active, zips, active_shipments)


def by_code(answer: dict) -> dict[str, dict]:
    return {code["postal_code"]: code for code in answer["postal_codes"]}


def test_a_postal_codes_capacity_is_its_active_agents_and_above_70_percent_is_a_hotspot():
    answer = capacity_figures(
        [agent("a", 4, ("1", "2"), 3), agent("b", 6, ("1",)), agent("c", 9, ("1",), active=False)],
        {"1": 7, "2": 3},
    )

    assert by_code(answer)["1"] == {
        "postal_code": "1",
        "agents": 2,
        "active_shipments": 7,
        "capacity": 10,
        "utilisation": 0.7,
        "hotspot": False,  # above 0.7, not at it
    }
    assert by_code(answer)["2"]["utilisation"] == 0.75
    assert by_code(answer)["2"]["hotspot"] is True


def test_codes_with_a_load_or_an_active_agent_are_listed_sorted_and_unserved_load_is_a_hotspot():
    answer = capacity_figures(
        [agent("a", 2, ("30",)), agent("z", 5, ("40",), active=False)], {"20": 1}
    )

    assert [code["postal_code"] for code in answer["postal_codes"]] == ["20", "30"]
    assert by_code(answer)["20"] | {"postal_code": None} == {
        "postal_code": None,
        "agents": 0,
        "active_shipments": 1,
        "capacity": 0,
        "utilisation": 1.0,
        "hotspot": True,
    }
    assert by_code(answer)["30"]["utilisation"] == 0.0


def test_every_agent_is_listed_in_order_with_its_own_utilisation_inactive_ones_too():
    answer = capacity_figures([agent("a", 3, ("1",), 1), agent("b", 2, (), 2, active=False)], {})

    assert answer["agents"] == [
        {"id": "a", "name": "A", "active_shipments": 1, "capacity": 3, "utilisation": 0.333},
        {"id": "b", "name": "B", "active_shipments": 2, "capacity": 2, "utilisation": 1.0},
    ]


def on_stream(subject: str, sequence: int) -> StreamEvent:
    return StreamEvent("t_1", subject, sequence, datetime.now(UTC))


def test_an_acceptance_names_the_agent_without_a_status_and_an_agent_event_sets_its_profile():
    accepted = contract.ShipmentAssignmentAccepted(
        shipment_id="shp_1", order_id="ord_1", assignment_id="asg_1", agent_id="agt_1"
    )
    updated = contract.AgentUpdated(
        agent_id="agt_1", name="Ada", capacity=4, service_zip_codes=("1",), active=False
    )

    took = RULES[type(accepted)](on_stream("shp_1", 2), accepted)
    changed = RULES[type(updated)](on_stream("agt_1", 3), updated)

    assert (took.table, took.key, took.status, took.facts) == (
        tables.shipment_states,
        "shp_1",
        None,
        {"agent_id": "agt_1"},
    )
    assert (changed.table, changed.key, changed.status) == (
        tables.agent_states,
        "agt_1",
        "inactive",
    )
    assert changed.facts == {"name": "Ada", "capacity": 4, "service_zip_codes": ["1"]}


def test_the_monitor_reads_the_agent_events_and_shipping_counts_the_contracts_statuses():
    from waybill.monitor.app import consumed_events

    assert set(contract.AGENT_EVENTS) <= set(consumed_events())
    assert contract.ACTIVE_SHIPMENT_STATUSES == ("pending", "in_transit", "failed")
