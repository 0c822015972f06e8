"""The kit builds a command's ``Caller`` from an authenticated request (real auth database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends

from waybill.common.auth import KeyStore, ensure_auth_schema, issue_key
from waybill.common.eventstore import Caller
from waybill.common.http.app import create_app
from waybill.common.http.caller import require_caller

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
async def setup(infra) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    database = await asyncio.to_thread(infra.new_database, "auth")
    await ensure_auth_schema(infra.settings(), database=database)
    router = APIRouter()

    @router.post("/commands")
    async def run_command(
        caller: Annotated[Caller, Depends(require_caller("service"))],
    ) -> dict[str, Any]:
        return asdict(caller)

    store = KeyStore(infra.settings(), database=database)
    app = create_app(
        service="callertest",
        settings=infra.settings(),
        routers=[router],
        health_checks={},
        key_store=store,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        yield client, database
    await store.close()


async def _key(infra, database: str, role: str) -> tuple[str, str]:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    issued = await issue_key(infra.settings(), tenant_id=tenant, role=role, database=database)
    return issued.key, tenant


async def test_the_caller_carries_the_tenant_the_correlation_id_and_the_trace(infra, setup) -> None:
    http, database = setup
    key, tenant = await _key(infra, database, "service")
    response = await http.post(
        "/commands",
        headers={
            "authorization": f"Bearer {key}",
            "x-correlation-id": "corr-caller-1",
            "traceparent": INCOMING_TRACEPARENT,
        },
    )
    assert response.status_code == 200, response.text
    caller = response.json()
    assert caller["tenant_id"] == tenant
    assert caller["correlation_id"] == "corr-caller-1"
    assert caller["causation_id"] is None
    # The request's server span continues the client's trace; the caller carries that span.
    version, trace_id, span_id, _flags = caller["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    assert span_id != "00f067aa0ba902b7"


async def test_the_caller_dependency_answers_401_and_403_like_require_role(infra, setup) -> None:
    http, database = setup
    admin_key, _ = await _key(infra, database, "admin")
    missing = await http.post("/commands")
    wrong_role = await http.post("/commands", headers={"authorization": f"Bearer {admin_key}"})
    assert missing.status_code == 401
    assert missing.json()["code"] == "UNAUTHENTICATED"
    assert wrong_role.status_code == 403
    assert wrong_role.json()["code"] == "FORBIDDEN"
