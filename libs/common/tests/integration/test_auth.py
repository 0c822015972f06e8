"""API keys on the real auth database: 401/403 semantics, fast revocation, hashed storage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, Depends

from waybill.common.auth import (
    KeyStore,
    Principal,
    ensure_auth_schema,
    hash_key,
    issue_key,
    require_role,
    revoke_key,
)
from waybill.common.http.app import create_app
from waybill.common.settings import WaybillSettings
from waybill.devstack.testing import eventually


@pytest.fixture
async def auth_db(infra) -> str:
    database = await asyncio.to_thread(infra.new_database, "auth")
    await ensure_auth_schema(infra.settings(), database=database)
    return database


@pytest.fixture
async def http(infra, auth_db: str) -> AsyncIterator[httpx.AsyncClient]:
    router = APIRouter()

    @router.get("/admin-only")
    async def admin_only(
        principal: Annotated[Principal, Depends(require_role("admin"))],
    ) -> dict[str, str | None]:
        return {"tenant_id": principal.tenant_id, "role": principal.role}

    store = KeyStore(infra.settings(), database=auth_db)
    app = create_app(
        service="authtest",
        settings=infra.settings(),
        routers=[router],
        health_checks={},
        key_store=store,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        yield client
    await store.close()


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _issue(infra, auth_db: str, role: str) -> tuple[str, str, str]:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    issued = await issue_key(infra.settings(), tenant_id=tenant, role=role, database=auth_db)
    return issued.key, issued.key_id, tenant


async def test_a_live_key_with_the_right_role_is_let_in(infra, auth_db, http) -> None:
    key, _, tenant = await _issue(infra, auth_db, "admin")
    response = await http.get("/admin-only", headers=_bearer(key))
    assert response.status_code == 200
    assert response.json() == {"tenant_id": tenant, "role": "admin"}


async def test_a_missing_key_is_401_with_a_bearer_challenge(http) -> None:
    response = await http.get("/admin-only")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("key", ["wb_live_" + "x" * 43, "not-even-our-format", "Basic abc"])
async def test_an_unknown_key_is_401(http, key: str) -> None:
    response = await http.get("/admin-only", headers=_bearer(key))
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"


async def test_a_key_with_the_wrong_role_is_403(infra, auth_db, http) -> None:
    key, _, _ = await _issue(infra, auth_db, "service")
    response = await http.get("/admin-only", headers=_bearer(key))
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


async def test_a_revoked_key_stops_working_within_seconds(infra, auth_db, http) -> None:
    key, key_id, _ = await _issue(infra, auth_db, "admin")
    assert (await http.get("/admin-only", headers=_bearer(key))).status_code == 200
    assert await revoke_key(infra.settings(), key_id, database=auth_db)
    status = await eventually(
        lambda: _status(http, key),
        until=lambda code: code != 200,
        timeout_s=5,
        what="the revoked key refused (still accepted after 5 s)",
    )
    assert status == 401
    assert not await revoke_key(infra.settings(), key_id, database=auth_db)  # already revoked


async def test_keys_are_stored_only_as_hashes(infra, auth_db) -> None:
    key, key_id, _ = await _issue(infra, auth_db, "agent")
    conn = await asyncpg.connect(infra.settings().asyncpg_dsn(auth_db))
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", uuid.UUID(key_id))
        dump = await conn.fetchval("SELECT string_agg(t::text, '|') FROM api_keys t")
    finally:
        await conn.close()
    assert row["key_hash"] == hash_key(key)
    assert key not in dump
    assert key[len("wb_live_") + 8 :] not in dump  # not even most of the random part


async def test_schema_creation_is_safe_with_concurrent_callers(infra) -> None:
    database = f"auth_{uuid.uuid4().hex[:12]}"  # does not exist yet: created by the callers
    settings: WaybillSettings = infra.settings()
    await asyncio.gather(*(ensure_auth_schema(settings, database=database) for _ in range(4)))
    issued = await issue_key(settings, tenant_id="t", role="service", database=database)
    store = KeyStore(settings, database=database)
    try:
        principal = await store.authenticate(issued.key)
    finally:
        await store.close()
    assert principal == Principal("t", "service", issued.key_id, None)


async def test_an_unknown_role_cannot_be_issued(infra, auth_db) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        await issue_key(infra.settings(), tenant_id="t", role="root", database=auth_db)


async def _status(http: httpx.AsyncClient, key: str) -> int:
    return (await http.get("/admin-only", headers=_bearer(key))).status_code
