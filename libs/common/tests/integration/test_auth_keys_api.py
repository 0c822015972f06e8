"""``GET /auth/keys`` and ``POST /auth/keys/{id}/revoke`` on a real auth database; the CLI's
``waybill keys list|revoke``; ``last_used_at`` written at most once a minute per key."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from waybill.common.auth import KeyStore, ensure_auth_schema, issue_key
from waybill.common.auth.keys import list_keys
from waybill.common.http.app import create_app
from waybill.devstack.testing import eventually


@pytest.fixture
async def auth_db(infra) -> str:
    database = await asyncio.to_thread(infra.new_database, "authkeys")
    await ensure_auth_schema(infra.settings(), database=database)
    return database


@pytest.fixture
async def http(infra, auth_db: str) -> AsyncIterator[httpx.AsyncClient]:
    store = KeyStore(infra.settings(), database=auth_db)
    app = create_app(
        service="keystest", settings=infra.settings(), routers=[], health_checks={}, key_store=store
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        yield client
    await store.close()


async def _issue(infra, auth_db: str, tenant: str, role: str) -> tuple[str, str]:
    issued = await issue_key(infra.settings(), tenant_id=tenant, role=role, database=auth_db)
    return issued.key, issued.key_id


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _tenant() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


async def test_an_admin_lists_its_own_tenants_keys_only_newest_first(infra, auth_db, http):
    tenant, other = _tenant(), _tenant()
    admin, admin_id = await _issue(infra, auth_db, tenant, "admin")
    _, service_id = await _issue(infra, auth_db, tenant, "service")
    _, foreign_id = await _issue(infra, auth_db, other, "admin")

    response = await http.get("/auth/keys", headers=_bearer(admin))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["id"] for i in items] == [service_id, admin_id]
    assert foreign_id not in response.text
    assert set(items[0]) == {
        "id",
        "prefix",
        "role",
        "agent_id",
        "created_at",
        "last_used_at",
        "revoked",
        "revoked_at",
    }
    assert items[0]["prefix"].startswith("wb_live_")
    assert items[0]["role"] == "service" and items[0]["revoked"] is False
    assert admin not in response.text and admin[len("wb_live_") + 8 :] not in response.text


async def test_keys_are_paginated_with_an_opaque_cursor(infra, auth_db, http):
    tenant = _tenant()
    admin, admin_id = await _issue(infra, auth_db, tenant, "admin")
    _, service_id = await _issue(infra, auth_db, tenant, "service")
    first = (await http.get("/auth/keys?limit=1", headers=_bearer(admin))).json()
    assert [i["id"] for i in first["items"]] == [service_id]
    assert first["next_cursor"]
    second = await http.get(
        "/auth/keys", params={"limit": 1, "cursor": first["next_cursor"]}, headers=_bearer(admin)
    )
    assert [i["id"] for i in second.json()["items"]] == [admin_id]
    assert second.json()["next_cursor"] is None


async def test_an_admin_revokes_its_tenants_key_and_it_stops_working_at_once(infra, auth_db, http):
    tenant = _tenant()
    admin, _ = await _issue(infra, auth_db, tenant, "admin")
    leaked, leaked_id = await _issue(infra, auth_db, tenant, "admin")
    assert (await http.get("/auth/keys", headers=_bearer(leaked))).status_code == 200

    response = await http.post(f"/auth/keys/{leaked_id}/revoke", headers=_bearer(admin))
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] is True and response.json()["revoked_at"]
    # This process forgets the key at once (the others within the cache TTL).
    refused = await http.get("/auth/keys", headers=_bearer(leaked))
    assert refused.status_code == 401
    again = await http.post(f"/auth/keys/{leaked_id}/revoke", headers=_bearer(admin))
    assert again.status_code == 200
    assert again.json()["revoked_at"] == response.json()["revoked_at"]


async def test_another_tenants_key_is_404_and_stays_live(infra, auth_db, http):
    admin, _ = await _issue(infra, auth_db, _tenant(), "admin")
    foreign, foreign_id = await _issue(infra, auth_db, _tenant(), "admin")
    response = await http.post(f"/auth/keys/{foreign_id}/revoke", headers=_bearer(admin))
    assert response.status_code == 404
    assert response.json()["code"] == "API_KEY_NOT_FOUND"
    unknown = await http.post(f"/auth/keys/{uuid.uuid4()}/revoke", headers=_bearer(admin))
    assert unknown.status_code == 404
    assert (await http.get("/auth/keys", headers=_bearer(foreign))).status_code == 200


async def test_only_admins_manage_keys(infra, auth_db, http):
    tenant = _tenant()
    service, service_id = await _issue(infra, auth_db, tenant, "service")
    assert (await http.get("/auth/keys", headers=_bearer(service))).status_code == 403
    revoke = await http.post(f"/auth/keys/{service_id}/revoke", headers=_bearer(service))
    assert revoke.status_code == 403


async def test_last_used_is_recorded_but_not_rewritten_on_every_request(infra, auth_db, http):
    tenant = _tenant()
    admin, admin_id = await _issue(infra, auth_db, tenant, "admin")

    async def last_used() -> str | None:
        [record] = [
            r
            for r in await list_keys(infra.settings(), tenant_id=tenant, database=auth_db)
            if r.key_id == admin_id
        ]
        return None if record.last_used_at is None else record.last_used_at.isoformat()

    assert await last_used() is None
    await http.get("/auth/keys", headers=_bearer(admin))
    # Written in the background, off the request.
    first = await eventually(last_used, timeout_s=5, what="last_used_at written")
    for _ in range(5):
        assert (await http.get("/auth/keys", headers=_bearer(admin))).status_code == 200
    assert await last_used() == first  # at most once a minute per key


def _cli(infra, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waybill.cli.main", "keys", *args],
        env=infra.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_cli_lists_and_revokes_keys(infra):
    await ensure_auth_schema(infra.settings())
    tenant = _tenant()
    issued = await issue_key(infra.settings(), tenant_id=tenant, role="service")
    listed = await asyncio.to_thread(_cli, infra, "list", "--tenant", tenant)
    assert listed.returncode == 0, listed.stderr
    [row] = listed.stdout.splitlines()[1:]
    cells = row.split("\t")
    assert cells[:4] == [issued.key_id, issued.key[: len("wb_live_") + 8], tenant, "service"]
    assert cells[-1] == "-"  # not revoked
    assert issued.key not in listed.stdout

    revoked = await asyncio.to_thread(_cli, infra, "revoke", issued.key_id)
    assert revoked.returncode == 0, revoked.stderr
    relisted = await asyncio.to_thread(_cli, infra, "list", "--tenant", tenant)
    assert relisted.stdout.splitlines()[1].split("\t")[-1] != "-"
    twice = await asyncio.to_thread(_cli, infra, "revoke", issued.key_id)
    assert twice.returncode != 0 and "no live key" in twice.stderr


async def test_the_auth_database_can_live_on_another_server(infra, auth_db):
    """WAYBILL_AUTH_DATABASE_URL: a service whose own server is elsewhere (here: nowhere)
    still authenticates against the one shared auth database."""
    from waybill.devstack.infra import free_port

    tenant = _tenant()
    key, key_id = await _issue(infra, auth_db, tenant, "admin")
    elsewhere = infra.settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        auth_database_url=infra.settings().database_dsn(auth_db),
    )
    store = KeyStore(elsewhere)
    try:
        principal = await store.authenticate(key)
    finally:
        await store.close()
    assert principal is not None and principal.key_id == key_id
    await ensure_auth_schema(elsewhere)  # idempotent on the auth server, not on the own one
