"""The capacity view's rule (CONTRACT.md § shipping ``GET /capacity``), declared once: shipping
answers its ``GET /capacity`` with it from its tables, the monitor its overview's ``capacity``
from shipping's events, so the two agree by construction.

- the postal codes listed: those with a load (``demand``: shipments in
  ``ACTIVE_SHIPMENT_STATUSES``, assigned or still waiting), and those an active agent serves;
- a postal code's capacity is the sum over its active agents; above ``HOTSPOT_UTILISATION`` it
  is a hotspot (with no capacity: utilisation 1 if it has a load, else 0);
- an agent's utilisation: its active shipments over its own capacity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from waybill.common.contracts.shipping import HOTSPOT_UTILISATION


@dataclass(frozen=True)
class AgentCapacity:
    """One agent as the capacity view sees it."""

    agent_id: str
    name: str
    capacity: int
    active: bool
    service_zip_codes: tuple[str, ...]
    active_shipments: int


def capacity_figures(agents: Sequence[AgentCapacity], demand: Mapping[str, int]) -> dict[str, Any]:
    """Per postal code and per agent (``agents`` in the order they are listed)."""
    serving: dict[str, list[AgentCapacity]] = {code: [] for code in demand}
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
