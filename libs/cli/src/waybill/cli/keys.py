"""``waybill keys create``: issue an API key on the running stack's auth database.

The stack is found through the state dir's ``up.json`` (the embedded PostgreSQL's real port),
or through ``WAYBILL_DATABASE_URL`` when an external server is configured.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import asyncpg

from waybill.cli.stack.state import StateDir, running_stack
from waybill.common.settings import AUTH_DATABASE, WaybillSettings

if TYPE_CHECKING:
    from waybill.common.auth import IssuedKey


class Role(StrEnum):
    service = "service"
    agent = "agent"
    admin = "admin"


class StackNotReachable(RuntimeError):
    """No running stack (or no reachable auth database) to issue the key on."""


def target_settings(settings: WaybillSettings) -> WaybillSettings:
    """The settings of the stack to issue keys on: the external database or ``up.json``'s."""
    if settings.database_url:
        return settings
    state = StateDir(settings.state_dir)
    record = running_stack(state)
    if record is None or record.server_url is None:
        raise StackNotReachable(
            f"no Waybill stack is running with state dir {state.root} "
            "(start one with `waybill up`, or set WAYBILL_DATABASE_URL)"
        )
    return settings.model_copy(update={"database_url": record.server_url})


async def _check_reachable(settings: WaybillSettings) -> None:
    try:
        conn = await asyncpg.connect(settings.asyncpg_dsn(AUTH_DATABASE), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise StackNotReachable(
            f"cannot reach the auth database {AUTH_DATABASE} on {settings.server_url}: {exc} "
            "(is `waybill up` running?)"
        ) from exc
    await conn.close()


async def create_key(
    settings: WaybillSettings, *, tenant_id: str, role: Role, agent_id: str | None
) -> IssuedKey:
    if role is Role.agent and not agent_id:
        raise ValueError("an agent key needs --agent-id")
    if role is not Role.agent and agent_id:
        raise ValueError("--agent-id only applies to --role agent")
    target = target_settings(settings)
    await _check_reachable(target)
    from waybill.common.auth import issue_key

    return await issue_key(target, tenant_id=tenant_id, role=role.value, agent_id=agent_id)
