"""The agent directory (profiles, API keys), tenant settings and the capacity view.

An agent is configuration, not an event stream: its profile is a row. What matters for
dispatch happens when it changes: an agent that may now take shipments (new, re-activated,
more capacity, other postal codes, other shifts) wakes the shipments waiting in its postal
codes, in the same transaction, and the dispatcher offers them at its next turn.

Every change of the row is also an event of the agent's stream (``agent.registered``,
``agent.updated``: its whole profile, never its key), appended in the same transaction, so the
outbox publishes exactly the changes that committed and readers (the monitor's capacity view)
follow the directory from events.

Creating an agent spans two databases (its key in the shared auth database, its row in
shipping's): the key is issued first and revoked again if the row cannot be written, so no
key outlives a failed creation.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.auth import IssuedKey
from waybill.common.contracts.capacity import AgentCapacity, capacity_figures
from waybill.common.contracts.shipping import (
    AgentProfile,
    AgentRegistered,
    AgentShift,
    AgentUpdated,
)
from waybill.common.eventstore import Caller, EventStore, append_decided
from waybill.common.keyset import Position
from waybill.shipping import repository as db
from waybill.shipping.domain.agents import Shift
from waybill.shipping.domain.errors import AgentNotFound
from waybill.shipping.domain.shipment import normalise_postal_code
from waybill.shipping.handlers import Policy
from waybill.shipping.views import (
    AgentView,
    CapacityView,
    CreatedAgentView,
    SettingsView,
)

log = structlog.get_logger(__name__)


IssueKey = Callable[[str, str], Awaitable[IssuedKey]]  # (tenant, agent id) -> key
RevokeKey = Callable[[str, str], Awaitable[object]]  # (tenant, key id)


AGENT_STREAM_TYPE = "agent"


@dataclass
class AgentDirectory:
    engine: AsyncEngine
    store: EventStore
    issue_key: IssueKey
    revoke_key: RevokeKey
    policy: Policy = field(default_factory=Policy)
    wake_dispatcher: Callable[[], None] = lambda: None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def create(
        self,
        caller: Caller,
        *,
        name: str,
        zip_codes: Sequence[str],
        capacity: int,
        shifts: Sequence[Shift],
    ) -> CreatedAgentView:
        agent_id = f"agt_{uuid.uuid4().hex}"
        zips = _zips(zip_codes)
        issued = await self.issue_key(caller.tenant_id, agent_id)
        try:
            now = self.clock()
            async with self.engine.begin() as conn:
                row = await db.insert_agent(
                    conn,
                    caller.tenant_id,
                    agent_id,
                    name=name,
                    zip_codes=zips,
                    capacity=capacity,
                    shifts=shifts,
                    key_id=issued.key_id,
                    now=now,
                )
                await self._record(conn, caller, AgentRegistered, row, version=0)
                woken = await db.wake_waiting(conn, caller.tenant_id, zips, now)
        except BaseException:
            await self.revoke_key(caller.tenant_id, issued.key_id)
            raise
        log.info("agent_create_succeeded", agent_id=agent_id, zip_codes=len(zips), woken=woken)
        self.wake_dispatcher()
        return CreatedAgentView(**AgentView.from_row(row).model_dump(), api_key=issued.key)

    async def update(self, caller: Caller, agent_id: str, changes: dict[str, Any]) -> AgentView:
        if "service_zip_codes" in changes:
            changes = {**changes, "service_zip_codes": _zips(changes["service_zip_codes"])}
        now = self.clock()
        async with self.engine.begin() as conn:
            if await db.lock_agent(conn, caller.tenant_id, agent_id) is None:
                raise AgentNotFound(f"agent {agent_id} not found")
            row = await db.update_agent(conn, caller.tenant_id, agent_id, changes, now)
            assert row is not None
            # The row is locked: nobody else appends to the agent's stream meanwhile. (An agent
            # created before its events existed starts its stream here, at version 0.)
            version = await self.store.stream_version(conn, agent_id)
            await self._record(conn, caller, AgentUpdated, row, version=version)
            # Whatever changed, the agent may now be eligible where it was not: let the
            # dispatcher look at its postal codes again (it re-checks everything itself).
            await db.wake_waiting(conn, caller.tenant_id, row.service_zip_codes, now)
        self.wake_dispatcher()
        return AgentView.from_row(row)

    async def _record(
        self,
        conn: AsyncConnection,
        caller: Caller,
        kind: type[AgentProfile],
        row: Any,
        *,
        version: int,
    ) -> None:
        """Append the agent's profile as it is now in ``row`` (its key id stays out)."""
        view = AgentView.from_row(row)
        event = kind(
            agent_id=view.id,
            name=view.name,
            capacity=view.capacity,
            service_zip_codes=tuple(view.service_zip_codes),
            active=view.active,
            shifts=tuple(AgentShift(**shift.model_dump()) for shift in view.shifts),
        )
        await append_decided(
            self.store,
            conn,
            caller,
            stream_id=view.id,
            stream_type=AGENT_STREAM_TYPE,
            expected_version=version,
            events=[event],
        )

    async def get(self, tenant_id: str, agent_id: str) -> AgentView:
        async with self.engine.connect() as conn:
            row = await db.agent_row(conn, tenant_id, agent_id)
        if row is None:
            raise AgentNotFound(f"agent {agent_id} not found")
        return AgentView.from_row(row)

    async def list(
        self, tenant_id: str, *, limit: int, after: Position | None
    ) -> tuple[list[AgentView], Position | None]:
        rows, last = await db.agents_page(self.engine, tenant_id, limit=limit, after=after)
        return [AgentView.from_row(r) for r in rows], last

    async def capacity(self, tenant_id: str) -> CapacityView:
        """Per postal code: the active agents serving it, its active shipments against their
        capacity (hotspot above 70 %); per agent: its own utilisation."""
        async with self.engine.connect() as conn:
            agents = await db.agents_with_load(conn, tenant_id)
            demand = await db.active_by_postal_code(conn, tenant_id)
        loads = [
            AgentCapacity(
                agent_id=a.agent_id,
                name=a.name,
                capacity=a.capacity,
                active=a.active,
                service_zip_codes=tuple(a.service_zip_codes),
                active_shipments=a.active_shipments,
            )
            for a in agents
        ]
        return CapacityView.model_validate(capacity_figures(loads, demand))

    async def settings(self, tenant_id: str) -> SettingsView:
        async with self.engine.connect() as conn:
            return self._settings_view(await db.tenant_settings(conn, tenant_id))

    async def put_settings(self, tenant_id: str, changes: dict[str, Any]) -> SettingsView:
        async with self.engine.begin() as conn:
            row = await db.put_settings(conn, tenant_id, changes, self.clock())
        return self._settings_view(row)

    def _settings_view(self, row: Any | None) -> SettingsView:
        wave_size, ttl = self.policy.of_tenant(row)
        return SettingsView(
            require_delivery_code=bool(row is not None and row.require_delivery_code),
            offer_wave_size=wave_size,
            offer_ttl_s=ttl.total_seconds(),
            sla_hours=self.policy.sla_of_tenant(row).total_seconds() / 3600,
        )


def _zips(codes: Sequence[str]) -> list[str]:
    return sorted({normalise_postal_code(c) for c in codes})
