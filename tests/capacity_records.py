"""Shipping's agent and shipment events as shipping publishes them, for the monitor's tests of
its capacity view (each a fresh stream with its sequences)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from waybill.common.contracts import shipping as contract
from waybill.devstack.records import envelope


def agent_events(tenant_id: str, agent_id: str, *profiles: dict[str, Any]) -> list[Any]:
    """An agent's stream: registered with the first profile, then updated to each next one."""
    kinds = [contract.AgentRegistered, *[contract.AgentUpdated] * (len(profiles) - 1)]
    return [
        envelope(
            kind(agent_id=agent_id, **profile), tenant_id=tenant_id, subject=agent_id, sequence=n
        )
        for n, (kind, profile) in enumerate(zip(kinds, profiles, strict=True), start=1)
    ]


def shipment_events(tenant_id: str, postal_code: str, agent_id: str, *steps: str) -> list[Any]:
    """A shipment's stream: created, accepted by ``agent_id``, then ``steps``."""
    shipment_id, order_id = f"shp_{uuid.uuid4().hex}", f"ord_{uuid.uuid4().hex}"
    ids = {"shipment_id": shipment_id, "order_id": order_id}
    due = datetime.now(UTC) + timedelta(hours=48)
    events: list[contract.ShippingEvent] = [
        contract.ShipmentCreated(**ids, postal_code=postal_code, sla_due_at=due),
        contract.ShipmentAssignmentAccepted(**ids, assignment_id="asg_1", agent_id=agent_id),
    ]
    made = {
        "in_transit": lambda: contract.ShipmentInTransit(
            **ids, agent_id=agent_id, attempt=1, delivery_code_sealed="s", delivery_code_hash="h"
        ),
        "delivered": lambda: contract.ShipmentDelivered(
            **ids, agent_id=agent_id, delivered_at=datetime.now(UTC)
        ),
        "failed": lambda: contract.ShipmentFailed(**ids, agent_id=agent_id, reason="WEATHER"),
    }
    events += [made[step]() for step in steps]
    return [
        envelope(event, tenant_id=tenant_id, subject=shipment_id, sequence=n)
        for n, event in enumerate(events, start=1)
    ]


def profile(
    capacity: int, zips: list[str], *, active: bool = True, name: str = "Ada"
) -> dict[str, Any]:
    return {"name": name, "capacity": capacity, "service_zip_codes": zips, "active": active}
