"""With its PostgreSQL stopped, an HTTP service answers 503 + ``Retry-After``, never 500.

The orders process runs on a PostgreSQL of its own (a dedicated embedded server, so the
session's shared one is never stopped) while its API keys live in the session's auth
database (``WAYBILL_AUTH_DATABASE_URL``): authentication keeps working, so every request
really meets the unreachable orders database, including the ones in flight when it stops.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.saga_stack import order_body

from waybill.common.auth import ensure_auth_schema, issue_key
from waybill.common.settings import AUTH_DATABASE
from waybill.devstack.infra import EmbeddedPostgres, free_port
from waybill.devstack.testing import Infra, ServiceProcess, eventually, start_service


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="waybill-outage-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    postgres = EmbeddedPostgres(root / "postgres", free_port())
    postgres.start()
    try:
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def orders_on_own_postgres(
    infra: Infra, own_postgres: EmbeddedPostgres
) -> Iterator[ServiceProcess]:
    asyncio.run(ensure_auth_schema(infra.settings()))
    env = {
        "WAYBILL_DATABASE_URL": own_postgres.url,
        "WAYBILL_AUTH_DATABASE_URL": infra.settings().database_dsn(AUTH_DATABASE),
    }
    service = start_service(infra, "orders", extra_env=env)
    try:
        yield service
    finally:
        service.stop()


async def _place(http: httpx.AsyncClient, sku: str) -> httpx.Response:
    return await http.post("/orders", json=order_body(sku))


async def test_post_orders_is_503_with_retry_after_while_the_database_is_down(
    infra: Infra, own_postgres: EmbeddedPostgres, orders_on_own_postgres: ServiceProcess
) -> None:
    tenant = f"t_outage_{free_port()}"
    keys = {
        role: (await issue_key(infra.settings(), tenant_id=tenant, role=role)).key
        for role in ("admin", "service")
    }
    url = orders_on_own_postgres.url

    def client(role: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {keys[role]}"}
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=30)

    async with client("admin") as admin, client("service") as http:
        assert (await admin.put("/inventory/SKU-1", json={"available": 10_000})).status_code == 200
        assert (await _place(http, "SKU-1")).status_code == 201

        # Requests in flight while the server stops, then requests against a stopped server.
        stop = asyncio.create_task(asyncio.to_thread(own_postgres.stop))
        in_flight: list[httpx.Response] = []
        while not stop.done():
            in_flight.extend(await asyncio.gather(*(_place(http, "SKU-1") for _ in range(4))))
        await stop
        while_down = await asyncio.gather(*(_place(http, "SKU-1") for _ in range(20)))
        ready = await http.get("/health/ready")

        for response in [*in_flight, *while_down]:
            assert response.status_code in (201, 503), (response.status_code, response.text)
        for response in while_down:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "DATABASE_UNAVAILABLE"
            assert int(response.headers["retry-after"]) >= 1
        assert ready.status_code == 503

        await asyncio.to_thread(own_postgres.start)

        async def place() -> httpx.Response:
            response = await _place(http, "SKU-1")
            assert response.status_code in (201, 503), response.text
            return response

        # The pool reconnects by itself; no restart of the service.
        await eventually(
            place,
            until=lambda r: r.status_code == 201,
            timeout_s=20,
            interval_s=0.2,
            what="orders accepted again",
        )
