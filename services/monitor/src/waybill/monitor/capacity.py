"""Agent capacity and hotspots, from shipping's events: the figures of shipping's
``GET /capacity`` (CONTRACT.md § shipping), computed from the monitor's read models.

The agents come from ``agent.registered`` / ``agent.updated`` (``agent_states``), the load from
the shipments' statuses, postal codes and accepting agents (``shipment_states``). The rules
are shipping's, so the two answers are equal once the monitor has consumed what shipping
published:

- an agent's active shipments: those it accepted whose status is one of the contract's
  ``ACTIVE_SHIPMENT_STATUSES``;
- a postal code's load: its shipments in those statuses, assigned or still waiting;
- the postal codes listed: those with a load, and those an active agent serves; a postal
  code's capacity is the sum over its active agents; above ``HOTSPOT_UTILISATION`` it is a
  hotspot (with no capacity: utilisation 1 if it has a load, else 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.shipping import HOTSPOT_UTILISATION
from waybill.monitor import repository


@dataclass(frozen=True)
class AgentLoad:
    """One agent as the capacity view sees it."""

    agent_id: str
    name: str
    capacity: int
    active: bool
    service_zip_codes: tuple[str, ...]
    active_shipments: int


async def capacity(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    """The tenant's capacity figures, in the shape of shipping's ``GET /capacity``."""
    rows = await repository.agents_with_load(conn, tenant_id)
    demand = await repository.active_by_postal_code(conn, tenant_id)
    agents = [
        AgentLoad(
            agent_id=row.agent_id,
            name=row.name or "",
            capacity=int(row.capacity or 0),
            active=row.status == "active",
            service_zip_codes=tuple(row.service_zip_codes or ()),
            active_shipments=int(row.active_shipments),
        )
        for row in rows
    ]
    return figures(agents, demand)


def figures(agents: Sequence[AgentLoad], demand: Mapping[str, int]) -> dict[str, Any]:
    """Per postal code and per agent (``agents`` in the order they are listed)."""
    serving: dict[str, list[AgentLoad]] = {code: [] for code in demand}
    for agent in agents:
        if agent.active:
            for code in agent.service_zip_codes:
                serving.setdefault(code, []).append(agent)
    postal_codes = []
    for code in sorted(serving):
        total = sum(agent.capacity for agent in serving[code])
        active = demand.get(code, 0)
        utilisation = _utilisation(active, total)
        postal_codes.append(
            {
                "postal_code": code,
                "agents": len(serving[code]),
                "active_shipments": active,
                "capacity": total,
                "utilisation": round(utilisation, 3),
                "hotspot": utilisation > HOTSPOT_UTILISATION,
            }
        )
    return {
        "postal_codes": postal_codes,
        "agents": [
            {
                "id": agent.agent_id,
                "name": agent.name,
                "active_shipments": agent.active_shipments,
                "capacity": agent.capacity,
                "utilisation": round(_utilisation(agent.active_shipments, agent.capacity), 3),
            }
            for agent in agents
        ],
    }


def _utilisation(active: int, capacity: int) -> float:
    return active / capacity if capacity else (1.0 if active else 0.0)
