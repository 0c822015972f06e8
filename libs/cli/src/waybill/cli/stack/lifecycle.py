"""What ``waybill up`` runs, and in which order it starts and stops it.

Order of start: PostgreSQL, Kafka (each embedded unless an external one is configured), the
databases, the topics, the auth schema, then every service of the topology
(``waybill.devstack.topology.SERVICES``: one entry per service, read by the tests too).
Order of stop is the reverse: services first (they flush to the broker and database), then
Kafka, then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from waybill.cli.stack.state import ProcessRecord, StackStatus, StateDir, UpRecord
from waybill.cli.stack.supervisor import SupervisedService, is_ready
from waybill.common import topics
from waybill.common.db import create_databases
from waybill.common.settings import AUTH_DATABASE, WaybillSettings
from waybill.devstack.infra import EmbeddedKafka, EmbeddedPostgres
from waybill.devstack.infra.kafka import ensure_topics
from waybill.devstack.topology import SERVICES, ServiceSpec, link_env, listener_ports

Progress = Callable[[str], None]


MONITOR = "monitor"


class StartupFailed(RuntimeError):
    """A part of the stack did not come up; the message says which and where its log is."""


class Stack:
    """The processes of one local stack, started in dependency order and stopped in reverse."""

    def __init__(
        self,
        settings: WaybillSettings,
        state: StateDir,
        *,
        specs: tuple[ServiceSpec, ...] = SERVICES,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.settings = settings
        self.state = state
        self.specs = specs
        self.environ = dict(environ)
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.services: list[SupervisedService] = []
        self.server_url = settings.server_url
        self.bootstrap_servers = settings.bootstrap_servers

    def start(self, progress: Progress) -> None:
        """Every step in order, for callers without a per-step display (the benchmarks)."""
        self.start_postgres(progress)
        self.start_kafka(progress)
        self.create_databases(progress)
        self.create_topics(progress)
        self.ensure_auth_schema(progress)
        self.start_services()
        self.wait_services_ready(progress)

    # -- infrastructure ------------------------------------------------------------------

    def start_postgres(self, progress: Progress) -> str:
        if self.settings.database_url:
            progress("using external PostgreSQL (WAYBILL_DATABASE_URL)")
            return "external"
        self.postgres = EmbeddedPostgres(self.state.postgres, self.settings.postgres_port)
        self.postgres.start(progress)
        self.server_url = self.postgres.url
        self.state.link_log("postgres", self.state.postgres / "postgres.log")
        return f"127.0.0.1:{self.settings.postgres_port}"

    def start_kafka(self, progress: Progress) -> str:
        if self.settings.kafka_bootstrap_servers:
            progress("using external Kafka (WAYBILL_KAFKA_BOOTSTRAP_SERVERS)")
            return "external"
        self.kafka = EmbeddedKafka(
            self.state.kafka, self.settings.kafka_port, partitions=self.settings.kafka_partitions
        )
        self.kafka.start(progress)
        self.bootstrap_servers = self.kafka.bootstrap_servers
        self.state.link_log("kafka", self.state.kafka / "kafka.log")
        return self.bootstrap_servers

    def create_databases(self, progress: Progress) -> str:
        names = [AUTH_DATABASE, *(db for spec in self.specs for db in spec.databases)]
        progress(", ".join(names))
        create_databases(self.server_url, names)
        return ", ".join(names)

    def create_topics(self, progress: Progress) -> str:
        progress(", ".join(topics.ALL_TOPICS))
        asyncio.run(
            ensure_topics(
                self.bootstrap_servers,
                topics.ALL_TOPICS,
                partitions=self.settings.kafka_partitions,
            )
        )
        return f"{len(topics.ALL_TOPICS)} topics, {self.settings.kafka_partitions} partitions"

    def ensure_auth_schema(self, progress: Progress) -> str:
        from waybill.common.auth import ensure_auth_schema

        progress(AUTH_DATABASE)
        asyncio.run(ensure_auth_schema(self.child_settings()))
        return AUTH_DATABASE

    def child_settings(self) -> WaybillSettings:
        """Settings as the children see them: always pointing at the servers actually in use."""
        return self.settings.model_copy(
            update={
                "database_url": self.server_url,
                "kafka_bootstrap_servers": self.bootstrap_servers,
                "state_dir": self.state.root,
            }
        )

    # -- services --------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = {
            **self.environ,
            "WAYBILL_DATABASE_URL": self.server_url,
            "WAYBILL_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "WAYBILL_STATE_DIR": str(self.state.root),
            "PYTHONUNBUFFERED": "1",
        }
        # Every service learns every port: the monitor polls them all, payments calls the sandbox.
        for spec in self.specs:
            env[spec.port_env] = str(spec.port(self.environ))
        # Who calls whom (payments -> the sandbox provider -> payments' webhooks): the topology's
        # links, unless the caller's environment already says (a real provider, say).
        urls = {spec.name: spec.instances(self.environ)[0].url for spec in self.specs}
        listeners = listener_ports(self.specs, self.environ)
        for setting, url in link_env(self.specs, urls.get, listeners.get).items():
            env.setdefault(setting, url)
        for spec in self.specs:
            for setting, value in spec.dev_env:
                env.setdefault(setting, value)
        return env

    def start_services(self) -> None:
        env = self.child_env()
        for spec in self.specs:
            for instance in spec.instances(self.environ):
                service = SupervisedService(
                    instance.name,
                    [sys.executable, "-m", spec.module],
                    env={**env, spec.port_env: str(instance.port)},
                    log_path=self.state.log_path(instance.name),
                    url=instance.url,
                )
                service.start(time.monotonic())
                self.services.append(service)

    def wait_services_ready(self, progress: Progress, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        for service in self.services:
            progress(f"waiting for {service.name} at {service.url}/health/ready")
            while not is_ready(service.url):
                code = service.exit_code()
                if code is not None:
                    raise StartupFailed(
                        f"{service.name} exited during start (exit code {code}); "
                        f"log {service.log_path}:\n{service.tail()}"
                    )
                if time.monotonic() > deadline:
                    raise StartupFailed(
                        f"{service.name} not ready after {timeout_s:.0f}s; "
                        f"log {service.log_path}:\n{service.tail()}"
                    )
                time.sleep(0.2)
            service.ready = True

    # -- the record and the stop -------------------------------------------------------------

    def record(self, status: StackStatus) -> UpRecord:
        processes: dict[str, ProcessRecord] = {}
        if self.postgres is not None:
            processes["postgres"] = ProcessRecord(
                kind="infrastructure",
                pid=self.postgres.pid,
                url=self.postgres.url,
                log=str(self.state.log_path("postgres")),
            )
        if self.kafka is not None:
            processes["kafka"] = ProcessRecord(
                kind="infrastructure",
                pid=self.kafka.pid,
                url=self.kafka.bootstrap_servers,
                log=str(self.state.log_path("kafka")),
            )
        for service in self.services:
            processes[service.name] = ProcessRecord(
                kind="service",
                pid=service.pid,
                url=service.url,
                log=str(service.log_path),
                restarts=service.restarts,
            )
        return UpRecord(
            status=status,
            pid=os.getpid(),
            state_dir=str(self.state.root),
            server_url=self.server_url,
            bootstrap_servers=self.bootstrap_servers,
            monitor_url=self.monitor_url,
            processes=processes,
        )

    @property
    def monitor_url(self) -> str | None:
        spec = next((s for s in self.specs if s.name == MONITOR), None)
        return f"http://127.0.0.1:{spec.port(self.environ)}/" if spec else None

    def stop(self, progress: Progress = lambda _: None) -> None:
        """Stop what was started: services (in parallel), then Kafka, then PostgreSQL."""
        if self.services:
            progress("stopping services")
            with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
                list(pool.map(lambda s: s.stop(), reversed(self.services)))
        if self.kafka is not None:
            progress("stopping Kafka")
            self.kafka.stop()
        if self.postgres is not None:
            progress("stopping PostgreSQL")
            self.postgres.stop()
