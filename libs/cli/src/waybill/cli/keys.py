"""``waybill keys create|list|revoke``: API keys in the running stack's auth database.

The stack is found through the state dir's ``up.json`` (the embedded PostgreSQL's real port),
or through ``WAYBILL_AUTH_DATABASE_URL`` / ``WAYBILL_DATABASE_URL`` when external servers are
configured.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.engine import make_url

from waybill.cli.stack.state import StateDir, running_stack
from waybill.common.db import plain_dsn
from waybill.common.settings import WaybillSettings

if TYPE_CHECKING:
    from waybill.common.auth import IssuedKey
    from waybill.common.auth.keys import KeyRecord


class Role(StrEnum):
    service = "service"
    agent = "agent"
    admin = "admin"


class StackNotReachable(RuntimeError):
    """No running stack (or no reachable auth database) to issue the key on."""


def target_settings(settings: WaybillSettings) -> WaybillSettings:
    """The settings of the stack to issue keys on: the external database or ``up.json``'s."""
    if settings.database_url or settings.auth_database_url:
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
    dsn = plain_dsn(settings.auth_dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        shown = make_url(dsn).render_as_string(hide_password=True)
        raise StackNotReachable(
            f"cannot reach the auth database {shown}: {exc} (is `waybill up` running?)"
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


async def list_keys(settings: WaybillSettings, *, tenant_id: str | None) -> list[KeyRecord]:
    target = target_settings(settings)
    await _check_reachable(target)
    from waybill.common.auth.keys import list_keys as list_all

    return await list_all(target, tenant_id=tenant_id)


async def revoke_key(settings: WaybillSettings, key_id: str) -> bool:
    """True if a live key was revoked; False if there is no such live key."""
    target = target_settings(settings)
    await _check_reachable(target)
    from waybill.common.auth import revoke_key as revoke

    return await revoke(target, key_id)
