"""Pytest plugin: the embedded (or external) PostgreSQL and Kafka, started once per session.

Loaded from the root ``conftest.py``. Honours ``WAYBILL_DATABASE_URL`` and
``WAYBILL_KAFKA_BOOTSTRAP_SERVERS``: when set, the suite runs against those servers and
never starts its own. Each test gets fresh databases and topics (unique names), never a
truncated shared one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from waybill.common import topics
from waybill.common.infra import EmbeddedKafka, EmbeddedPostgres, ManagedProcess
from waybill.common.infra.kafka import ensure_topics
from waybill.common.infra.postgres import create_databases, free_port
from waybill.common.settings import WaybillSettings


@dataclass
class Infra:
    """Handles to the servers the session runs against."""

    server_url: str
    bootstrap_servers: str
    root: Path
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    partitions: int = 6
    _created_dbs: list[str] = field(default_factory=list)

    def settings(self, **overrides: object) -> WaybillSettings:
        """Settings pointing at this session's servers (as a service process would read them)."""
        values: dict[str, object] = {
            "database_url": self.server_url,
            "kafka_bootstrap_servers": self.bootstrap_servers,
            "state_dir": self.root / "state",
        }
        return WaybillSettings(**(values | overrides))  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """Environment for a child process that should use these servers."""
        return {
            **os.environ,
            "WAYBILL_DATABASE_URL": self.server_url,
            "WAYBILL_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
        }

    def new_database(self, prefix: str = "test") -> str:
        """Create a fresh, uniquely named database and return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        create_databases(self.server_url, [name])
        self._created_dbs.append(name)
        return name

    def new_topic(self, prefix: str = "test", partitions: int | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        asyncio.run(
            ensure_topics(self.bootstrap_servers, [name], partitions=partitions or self.partitions)
        )
        return name

    async def anew_topic(self, prefix: str = "test", partitions: int | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        await ensure_topics(
            self.bootstrap_servers, [name], partitions=partitions or self.partitions
        )
        return name

    def stop_kafka(self) -> None:
        if self.kafka is None:
            pytest.skip("broker restarts need the embedded Kafka (external cluster configured)")
        self.kafka.stop()

    def start_kafka(self) -> None:
        assert self.kafka is not None
        self.kafka.start()

    def stop_postgres(self) -> None:
        """Stop the session's PostgreSQL (every service's database goes away with it)."""
        if self.postgres is None:
            pytest.skip("database restarts need the embedded PostgreSQL (external one configured)")
        self.postgres.stop()

    def start_postgres(self) -> None:
        """Start it again on the same port and data; returns once it accepts connections."""
        assert self.postgres is not None
        self.postgres.start()

    def postgres_running(self) -> bool:
        return self.postgres is None or self.postgres.pid is not None


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    settings = WaybillSettings()
    root = Path(tempfile.mkdtemp(prefix="waybill-test-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    postgres = kafka = None
    try:
        if settings.database_url:
            server_url = settings.database_url
        else:
            postgres = EmbeddedPostgres(root / "postgres", free_port())
            postgres.start()
            server_url = postgres.url
        if settings.kafka_bootstrap_servers:
            bootstrap = settings.kafka_bootstrap_servers
        else:
            kafka = EmbeddedKafka(root / "kafka", free_port(), partitions=settings.kafka_partitions)
            kafka.start()
            bootstrap = kafka.bootstrap_servers
        asyncio.run(
            ensure_topics(bootstrap, topics.ALL_TOPICS, partitions=settings.kafka_partitions)
        )
        yield Infra(
            server_url=server_url,
            bootstrap_servers=bootstrap,
            root=root,
            postgres=postgres,
            kafka=kafka,
            partitions=settings.kafka_partitions,
        )
    finally:
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
        if os.environ.get("WAYBILL_KEEP_TEST_STATE"):  # logs of every process, for debugging
            print(f"\nwaybill test state kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class ServiceProcess:
    """A Waybill service running as its own process, reached over real HTTP."""

    name: str
    url: str
    process: ManagedProcess

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        """Start it again (same port, same settings) and wait until it is ready."""
        if self.process.is_running():
            self.process.stop()
        self.process.start()
        _wait_ready(self.process, self.url)


def start_service(
    infra: Infra,
    module: str,
    port_setting: str,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Run ``python -m <module>`` on a (free) port against ``infra``; wait for /health/ready."""
    import sys

    port = port or free_port()
    env = {**infra.env(), port_setting: str(port), "WAYBILL_LOG_JSON": "true"}
    env.update(extra_env or {})
    name = module.rsplit(".", 1)[-1]
    process = ManagedProcess(
        name,
        [sys.executable, "-m", module],
        log_path=infra.root / "logs" / f"{name}-{port}.log",
        env=env,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    _wait_ready(process, url)
    return ServiceProcess(name, url, process)


def _wait_ready(process: ManagedProcess, url: str, timeout_s: float = 90) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.is_running():
            raise RuntimeError(f"{process.name} exited during start:\n{process.tail(60)}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.stop()
    raise TimeoutError(f"{process.name} not ready in {timeout_s}s:\n{process.tail(60)}")


@dataclass
class Tenant:
    """A fresh tenant with one API key per role and an HTTP client for each."""

    id: str
    admin: httpx.AsyncClient
    service: httpx.AsyncClient
    agent: httpx.AsyncClient

    async def stock(self, sku: str, available: int) -> None:
        response = await self.admin.put(f"/inventory/{sku}", json={"available": available})
        assert response.status_code == 200, response.text

    async def aclose(self) -> None:
        for client in (self.admin, self.service, self.agent):
            await client.aclose()


async def new_tenant(infra: Infra, base_url: str) -> Tenant:
    """Issue keys for a brand-new tenant (every test gets its own: isolation, no cleanup)."""
    from waybill.common.auth import issue_key

    tenant_id = f"t_{uuid.uuid4().hex[:10]}"
    clients = {}
    for role in ("admin", "service", "agent"):
        issued = await issue_key(infra.settings(), tenant_id=tenant_id, role=role)
        clients[role] = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {issued.key}"}, timeout=30
        )
    return Tenant(id=tenant_id, **clients)


def order_body(sku: str = "SKU-1", quantity: int = 1, **overrides: object) -> dict[str, object]:
    """A valid ``POST /orders`` body (CONTRACT.md § orders) with optional overrides."""
    body: dict[str, object] = {
        "customer": {"id": "cus_1", "email": "ada@example.com", "phone": "+15551234567"},
        "items": [{"sku": sku, "quantity": quantity, "unit_price_cents": 1250}],
        "currency": "USD",
        "shipping_address": {
            "line1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
        "payment_method": "pm_card_ok",
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="session")
def orders_service(infra: Infra) -> Iterator[ServiceProcess]:
    """The orders service as a real process on the session's PostgreSQL and Kafka."""
    from waybill.common.auth import ensure_auth_schema
    from waybill.common.settings import AUTH_DATABASE

    create_databases(infra.server_url, [AUTH_DATABASE])
    asyncio.run(ensure_auth_schema(infra.settings()))
    service = start_service(infra, "waybill.orders", "WAYBILL_ORDERS_PORT")
    yield service
    service.process.stop()


@pytest.fixture
async def tenant(infra: Infra, orders_service: ServiceProcess) -> AsyncIterator[Tenant]:
    tenant = await new_tenant(infra, orders_service.url)
    yield tenant
    await tenant.aclose()


# Knobs that make the saga settle in test time (production defaults are seconds to minutes).
FAST_SAGA_ENV = {
    "WAYBILL_PAYMENTS_RETRY_BASE_S": "0.05",
    "WAYBILL_PAYMENTS_RETRY_MAX_S": "0.5",
    "WAYBILL_PAYMENTS_RATE_LIMIT_BASE_S": "0.1",
    "WAYBILL_PAYMENTS_RATE_LIMIT_MAX_S": "3",
    "WAYBILL_PAYMENTS_BREAKER_RESET_S": "1",
    "WAYBILL_PAYMENTS_PROVIDER_TIMEOUT_S": "1",
    "WAYBILL_PAYMENTS_SYNC_INTERVAL_S": "1",
    "WAYBILL_PAYMENTS_SYNC_THRESHOLD_S": "1",
    "WAYBILL_PAYMENTS_CLAIM_LEASE_S": "3",
    "WAYBILL_PAYMENTS_SWEEP_INTERVAL_S": "0.5",
    "WAYBILL_SANDBOX_ASYNC_SETTLE_S": "0.3",
}


@dataclass
class Saga:
    """orders + payments + the sandbox provider, each a real process, wired together."""

    orders: ServiceProcess
    payments: ServiceProcess
    sandbox: ServiceProcess

    def sandbox_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.sandbox.url, timeout=30)


@pytest.fixture(scope="session")
def saga(infra: Infra, orders_service: ServiceProcess) -> Iterator[Saga]:
    sandbox_port, payments_port = free_port(), free_port()
    env = {
        **FAST_SAGA_ENV,
        "WAYBILL_PROVIDER_URL": f"http://127.0.0.1:{sandbox_port}",
        "WAYBILL_SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{payments_port}/webhooks/provider",
    }
    sandbox = start_service(
        infra, "waybill.sandbox", "WAYBILL_SANDBOX_PORT", port=sandbox_port, extra_env=env
    )
    try:
        payments = start_service(
            infra, "waybill.payments", "WAYBILL_PAYMENTS_PORT", port=payments_port, extra_env=env
        )
    except BaseException:
        sandbox.stop()
        raise
    yield Saga(orders=orders_service, payments=payments, sandbox=sandbox)
    payments.stop()
    sandbox.stop()
