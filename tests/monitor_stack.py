"""Pytest plugin: the monitor as a real process, and records of the dead-letter topic.

The monitor polls the readiness of the services it is linked to: in its session, orders is the
real orders process, and payments, shipping and the notifier are addresses where nothing
listens (services that are stopped), so ``/api/health`` answers ``degraded`` there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from waybill.common import topics
from waybill.common.envelope import EventEnvelope
from waybill.devstack.infra.network import free_port
from waybill.devstack.testing import Infra, ServiceProcess, Tenant, new_tenant, start_service

STOPPED = ("payments", "shipping", "notifier")


@pytest.fixture(scope="session")
def monitor_service(infra: Infra, orders_service: ServiceProcess) -> Iterator[ServiceProcess]:
    env = {
        "WAYBILL_MONITOR_ORDERS_URL": orders_service.url,
        # Retention runs often here, so a test sees a round soon after it aged its rows.
        "WAYBILL_MONITOR_DLQ_RETENTION_INTERVAL_S": "0.5",
    }
    env.update(
        {
            f"WAYBILL_MONITOR_{name.upper()}_URL": f"http://127.0.0.1:{free_port()}"
            for name in STOPPED
        }
    )
    service = start_service(infra, "monitor", extra_env=env)
    yield service
    service.stop()


def start_linked_monitor(infra: Infra, **urls: str) -> ServiceProcess:
    """A second monitor process linked to the real services in ``urls`` (by name; the others
    are addresses where nothing listens), for the views it reads from the services'
    ``/metrics``. API role only: it reads the session monitor's database (migrated by that
    one, which must be started first) and consumes nothing, as an API replica would."""
    env = {"WAYBILL_ROLES": "api"}
    for name in ("orders", "payments", "shipping", "notifier"):
        url = urls.get(name) or f"http://127.0.0.1:{free_port()}"
        env[f"WAYBILL_MONITOR_{name.upper()}_URL"] = url
    return start_service(infra, "monitor", extra_env=env)


@pytest.fixture
async def operator(infra: Infra, monitor_service: ServiceProcess) -> AsyncIterator[Tenant]:
    """A fresh tenant's keys on the monitor."""
    tenant = await new_tenant(infra, monitor_service.url)
    yield tenant
    await tenant.aclose()


async def produce(
    infra: Infra,
    topic: str,
    *,
    value: bytes,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [])
    finally:
        await producer.stop()


async def dead_letter(
    infra: Infra,
    record: EventEnvelope,
    *,
    group: str = "payments",
    original_topic: str = topics.ORDERS_EVENTS,
    error: str = "ValueError: no such order",
    **dlq: str,
) -> None:
    """A consumer dead letter of ``record`` on waybill.dlq, as the runtime writes it (headers
    of the parallel change when given in ``dlq``, e.g. ``failure_type="..."``)."""
    key, value, headers = record.to_kafka()
    now = datetime.now(UTC).isoformat()
    fields = {
        "error": error,
        "failure_class": "permanent_invalid_input",
        "attempts": "1",
        "first_failed_at": now,
        "last_failed_at": now,
        "original_topic": original_topic,
        "original_partition": "0",
        "original_offset": str(uuid.uuid4().int % 10_000),
        "consumer_group": group,
        "service": group,
        **dlq,
    }
    headers = [*headers, *((f"dlq_{name}", text.encode()) for name, text in fields.items())]
    await produce(infra, topics.DEAD_LETTERS, value=value, key=key, headers=headers)


def retry_outcome(retry_id: str, group: str) -> dict[str, Any]:
    return {
        "retry_id": retry_id,
        "group": group,
        "service": group,
        "outcome": "applied",
        "at": datetime.now(UTC).isoformat(),
    }


@pytest.fixture
async def other(infra: Infra, monitor_service: ServiceProcess) -> AsyncIterator[Tenant]:
    """Another fresh tenant, for isolation."""
    tenant = await new_tenant(infra, monitor_service.url)
    yield tenant
    await tenant.aclose()
