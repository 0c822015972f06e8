"""Kafka and PostgreSQL from testcontainers, for the test fixtures on a machine with a Docker
engine (``WAYBILL_TEST_INFRA=testcontainers``), in the images docker-compose.yml runs (a test
compares them).

Which servers a test session uses is decided in one place, ``plan_infra``, from the
environment: ``WAYBILL_DATABASE_URL`` / ``WAYBILL_KAFKA_BOOTSTRAP_SERVERS`` always win (an
external server), then ``WAYBILL_TEST_INFRA`` chooses between the embedded servers (the
default; no Docker) and containers. Asking for containers where no engine answers skips the
tests that need the servers, with that reason, rather than quietly running on embedded ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from waybill.devstack.infra.network import free_port

KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:17.6-bookworm"
SETTING = "WAYBILL_TEST_INFRA"


class Source(StrEnum):
    EMBEDDED = "embedded"
    TESTCONTAINERS = "testcontainers"
    EXTERNAL = "external"


@dataclass(frozen=True)
class InfraPlan:
    postgres: Source
    kafka: Source
    skip_reason: str | None = None


def plan_infra(environ: Mapping[str, str], docker_problem: Callable[[], str | None]) -> InfraPlan:
    """Where the session's PostgreSQL and Kafka come from. ``docker_problem`` is asked only
    when containers are wanted: None if an engine answers, else why not."""
    wanted = environ.get(SETTING, "").strip().lower() or Source.EMBEDDED.value
    if wanted not in (Source.EMBEDDED, Source.TESTCONTAINERS):
        raise ValueError(f"{SETTING}={wanted!r}: use 'embedded' (the default) or 'testcontainers'")
    default = Source(wanted)
    postgres = Source.EXTERNAL if environ.get("WAYBILL_DATABASE_URL") else default
    kafka = Source.EXTERNAL if environ.get("WAYBILL_KAFKA_BOOTSTRAP_SERVERS") else default
    skip_reason = None
    if Source.TESTCONTAINERS in (postgres, kafka):
        problem = docker_problem()
        if problem is not None:
            skip_reason = f"{SETTING}=testcontainers but no Docker engine answers ({problem})"
    return InfraPlan(postgres, kafka, skip_reason)


def docker_problem() -> str | None:
    """None if a Docker engine answers a ping, else what went wrong."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # any failure means "no engine here"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def postgres_container() -> Iterator[str]:
    """A PostgreSQL container on a loopback port; yields its server URL."""
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_IMAGE,
        username="waybill",
        password="waybill",  # noqa: S106 - a throwaway test container on loopback
        dbname="postgres",
        driver=None,
    )
    _bind_loopback(container, 5432, free_port())
    with container:
        yield container.get_connection_url(host="127.0.0.1")


@contextmanager
def kafka_container() -> Iterator[str]:
    """A single-node KRaft Kafka container (configured as in docker-compose.yml) advertised on
    a loopback port; yields its bootstrap servers."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }
    container = DockerContainer(KAFKA_IMAGE)
    for key, value in env.items():
        container.with_env(key, value)
    _bind_loopback(container, 9092, port)
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"127.0.0.1:{port}"


def _bind_loopback(container: Any, inner: int, port: int) -> None:
    # docker-py takes (host_ip, port) for a binding: publish on 127.0.0.1 only, like every
    # server the tests start.
    container.with_bind_ports(inner, ("127.0.0.1", port))
