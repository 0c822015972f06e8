"""CPU cost of the orders service's two hot paths, each measured in isolation.

    .venv/bin/python -m bench.orders_cpu place    [--count 1500] [--concurrency 16]
    .venv/bin/python -m bench.orders_cpu consume  [--count 600]  [--rate 50]

Starts embedded PostgreSQL and Kafka and one orders process (real HTTP, real broker), then
- ``place``: POST /orders at a fixed concurrency after a warm-up; reports requests/s and the
  orders process's CPU milliseconds per request;
- ``consume``: places orders untimed, publishes one ``payment.captured`` per order at a fixed
  rate onto the payments topic (as payments would) and reports orders' CPU milliseconds per
  consumed record until every order is paid.
Extra ``KEY=VALUE`` arguments go into the orders process's environment (A/B of settings).
Figures are for comparing changes on one machine, not absolute truths: see bench/saga.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from aiokafka import AIOKafkaProducer
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.common.auth import ensure_auth_schema, issue_key
from waybill.common.contracts.payments import PaymentCaptured
from waybill.common.db import create_databases
from waybill.common.envelope import EventEnvelope
from waybill.common.settings import AUTH_DATABASE
from waybill.devstack.infra import EmbeddedKafka, EmbeddedPostgres, free_port
from waybill.devstack.infra.kafka import ensure_topics
from waybill.devstack.testing import Infra, ServiceProcess, start_service

WARM_UP = 300


@contextmanager
def orders_process(extra_env: dict[str, str]) -> Iterator[tuple[Infra, ServiceProcess]]:
    root = Path(tempfile.mkdtemp(prefix="waybill-bench-orders-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    postgres = EmbeddedPostgres(root / "postgres", free_port())
    kafka = EmbeddedKafka(root / "kafka", free_port())
    service = None
    try:
        postgres.start()
        kafka.start()
        asyncio.run(ensure_topics(kafka.bootstrap_servers, topics.ALL_TOPICS, partitions=6))
        infra = Infra(server_url=postgres.url, bootstrap_servers=kafka.bootstrap_servers, root=root)
        create_databases(postgres.url, [AUTH_DATABASE])
        asyncio.run(ensure_auth_schema(infra.settings()))
        service = start_service(infra, "orders", extra_env=extra_env)
        yield infra, service
    finally:
        if service is not None:
            service.stop()
        kafka.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def clients(infra: Infra, url: str, concurrency: int) -> tuple[httpx.AsyncClient, dict, dict]:
    settings = infra.settings()
    admin = (await issue_key(settings, tenant_id="bench", role="admin")).key
    service = (await issue_key(settings, tenant_id="bench", role="service")).key
    limits = httpx.Limits(max_connections=concurrency)
    client = httpx.AsyncClient(base_url=url, timeout=30, limits=limits)
    return client, {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {service}"}


async def place_many(client: httpx.AsyncClient, headers: dict, count: int, gate: int) -> list[str]:
    semaphore = asyncio.Semaphore(gate)

    async def one(n: int) -> str:
        async with semaphore:
            response = await client.post("/orders", json=order_body(f"S{n % 20}"), headers=headers)
        response.raise_for_status()
        return str(response.json()["id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def measure_place(infra: Infra, service: ServiceProcess, count: int, gate: int) -> dict:
    client, admin, caller = await clients(infra, service.url, gate)
    async with client:
        for n in range(20):
            await client.put(f"/inventory/S{n}", json={"available": 10**9}, headers=admin)
        await place_many(client, caller, WARM_UP, gate)
        process = psutil.Process(service.process.pid)
        cpu, started = cpu_seconds(process), time.perf_counter()
        await place_many(client, caller, count, gate)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(process) - cpu
    return {
        "requests_per_s": round(count / elapsed, 1),
        "cpu_ms_per_request": round(1000 * cpu / count, 2),
    }


async def measure_consume(infra: Infra, service: ServiceProcess, count: int, rate: float) -> dict:
    client, admin, caller = await clients(infra, service.url, 16)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    async with client:
        for n in range(20):
            await client.put(f"/inventory/S{n}", json={"available": 10**9}, headers=admin)
        order_ids = await place_many(client, caller, WARM_UP + count, 16)

        async def capture(ids: list[str]) -> None:
            for order_id in ids:
                event = PaymentCaptured(
                    payment_id=f"pay_{uuid.uuid4().hex}",
                    order_id=order_id,
                    amount_cents=1250,
                    currency="USD",
                    provider="bench",
                    provider_payment_id="pi_bench",
                )
                key, value, headers = EventEnvelope(
                    source="/bench",
                    type=event.event_type,
                    subject=event.payment_id,
                    tenant_id="bench",
                    correlation_id=event.payment_id,
                    sequence=1,
                    data=event.model_dump(mode="json"),
                ).to_kafka()
                await producer.send(topics.PAYMENTS_EVENTS, value, key=key, headers=headers)
                await asyncio.sleep(1 / rate)

        async def all_paid() -> None:
            params = {"status": "pending_payment", "limit": 1}
            # Polling over HTTP on purpose: this is the client's view of "paid".
            while (await client.get("/orders", params=params, headers=caller)).json()[  # noqa: ASYNC110
                "items"
            ]:
                await asyncio.sleep(0.2)

        await capture(order_ids[:WARM_UP])
        process = psutil.Process(service.process.pid)
        cpu, started = cpu_seconds(process), time.perf_counter()
        await capture(order_ids[WARM_UP:])
        await all_paid()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(process) - cpu
    await producer.stop()
    return {
        "records_per_s": round(count / elapsed, 1),
        "cpu_ms_per_record": round(1000 * cpu / count, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["place", "consume"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("env", nargs="*", help="KEY=VALUE for the orders process")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    with orders_process(extra_env) as (infra, service):
        if args.path == "place":
            result = asyncio.run(measure_place(infra, service, args.count, args.concurrency))
        else:
            result = asyncio.run(measure_consume(infra, service, args.count, args.rate))
    print(json.dumps({"path": args.path, "env": extra_env, **result}))


if __name__ == "__main__":
    main()
