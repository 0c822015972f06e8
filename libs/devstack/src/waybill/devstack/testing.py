"""Pytest plugin: the embedded (or external) PostgreSQL and Kafka, started once per session.

Loaded from the root ``conftest.py``; generic over services (a service's own fixtures live
beside its tests and start it with ``start_service`` from the topology). Honours
``WAYBILL_DATABASE_URL`` and ``WAYBILL_KAFKA_BOOTSTRAP_SERVERS``: when set, the suite runs
against those servers and never starts its own; ``WAYBILL_TEST_INFRA=testcontainers`` takes the
others from containers where a Docker engine exists (``infra/containers.py``). Each test gets
fresh databases and topics (unique names), never a truncated shared one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from waybill.common import topics
from waybill.common.db import create_databases
from waybill.common.settings import WaybillSettings
from waybill.devstack.eventually import eventually, eventually_sync
from waybill.devstack.infra import EmbeddedKafka, EmbeddedPostgres, ManagedProcess, free_port
from waybill.devstack.infra.containers import (
    Source,
    docker_problem,
    kafka_container,
    plan_infra,
    postgres_container,
)
from waybill.devstack.infra.kafka import ensure_topics
from waybill.devstack.infra.network import free_port_pair
from waybill.devstack.topology import ServiceSpec, service

__all__ = [
    "Infra",
    "ServiceProcess",
    "Tenant",
    "eventually",
    "eventually_sync",
    "new_tenant",
    "start_service",
]


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


def start_embedded_kafka(root: Path, partitions: int, *, tries: int = 3) -> EmbeddedKafka:
    """The session's Kafka on free ports. Another test session on this machine may take a port
    between our choosing it and the broker binding it: the broker then exits at start, and we
    try again on other ports (each try in its own directory)."""
    for attempt in range(1, tries + 1):
        kafka = EmbeddedKafka(root / f"kafka-{attempt}", free_port_pair(), partitions=partitions)
        try:
            kafka.start()
            return kafka
        except RuntimeError as exc:
            kafka.stop()
            taken = "Address already in use" in str(exc) or "BindException" in str(exc)
            if attempt == tries or not taken:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    settings = WaybillSettings()
    plan = plan_infra(os.environ, docker_problem)
    if plan.skip_reason:
        pytest.skip(plan.skip_reason)
    root = Path(tempfile.mkdtemp(prefix="waybill-test-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    postgres = kafka = None
    containers = ExitStack()
    try:
        if plan.postgres is Source.EXTERNAL:
            server_url = str(settings.database_url)
        elif plan.postgres is Source.TESTCONTAINERS:
            server_url = containers.enter_context(postgres_container())
        else:
            postgres = EmbeddedPostgres(root / "postgres", free_port())
            postgres.start()
            server_url = postgres.url
        if plan.kafka is Source.EXTERNAL:
            bootstrap = str(settings.kafka_bootstrap_servers)
        elif plan.kafka is Source.TESTCONTAINERS:
            bootstrap = containers.enter_context(kafka_container())
        else:
            kafka = start_embedded_kafka(root, settings.kafka_partitions)
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
        containers.close()
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
    # The service's other ports by setting (topology ``listeners``), e.g. the sandbox's SMTP.
    listeners: dict[str, int] = field(default_factory=dict)

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
    spec: ServiceSpec | str,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Run a service of the topology (``spec`` or its name) as ``python -m <module>`` on a
    (free) port against ``infra``; wait for /health/ready."""
    import sys

    spec = service(spec) if isinstance(spec, str) else spec
    port = port or free_port()
    env = {**dict(spec.dev_env), **infra.env(), spec.port_env: str(port)}
    env["WAYBILL_LOG_JSON"] = "true"
    env.update({listener.setting: str(free_port()) for listener in spec.listeners})
    env.update(extra_env or {})
    process = ManagedProcess(
        spec.name,
        [sys.executable, "-m", spec.module],
        log_path=infra.root / "logs" / f"{spec.name}-{port}.log",
        env=env,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    _wait_ready(process, url)
    listeners = {listener.setting: int(env[listener.setting]) for listener in spec.listeners}
    return ServiceProcess(spec.name, url, process, listeners)


def _wait_ready(process: ManagedProcess, url: str, timeout_s: float = 90) -> None:
    def ready() -> bool:
        if not process.is_running():
            raise RuntimeError(f"{process.name} exited during start:\n{process.tail(60)}")
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200

    try:
        eventually_sync(
            ready,
            timeout_s=timeout_s,
            interval_s=0.2,
            ignoring=(httpx.HTTPError,),
            what=f"{process.name} ready at {url}",
        )
    except AssertionError as exc:
        process.stop()
        raise TimeoutError(f"{exc}\n{process.tail(60)}") from None


@dataclass
class Tenant:
    """A fresh tenant with one API key per role and an HTTP client for each."""

    id: str
    admin: httpx.AsyncClient
    service: httpx.AsyncClient
    agent: httpx.AsyncClient

    async def aclose(self) -> None:
        for client in (self.admin, self.service, self.agent):
            await client.aclose()


async def new_tenant(infra: Infra, base_url: str) -> Tenant:
    """Issue keys for a brand-new tenant (every test gets its own: isolation, no cleanup)."""
    from waybill.common.auth import issue_key

    tenant_id = f"t_{uuid.uuid4().hex[:10]}"
    clients: dict[str, httpx.AsyncClient] = {}
    for role in ("admin", "service", "agent"):
        issued = await issue_key(infra.settings(), tenant_id=tenant_id, role=role)
        clients[role] = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {issued.key}"}, timeout=30
        )
    return Tenant(id=tenant_id, **clients)
