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

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.capacity import AgentCapacity, capacity_figures
from waybill.monitor import repository


async def capacity(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    """The tenant's capacity figures, in the shape of shipping's ``GET /capacity``."""
    rows = await repository.agents_with_load(conn, tenant_id)
    demand = await repository.active_by_postal_code(conn, tenant_id)
    agents = [
        AgentCapacity(
            agent_id=row.agent_id,
            name=row.name or "",
            capacity=int(row.capacity or 0),
            active=row.status == "active",
            service_zip_codes=tuple(row.service_zip_codes or ()),
            active_shipments=int(row.active_shipments),
        )
        for row in rows
    ]
    return capacity_figures(agents, demand)
