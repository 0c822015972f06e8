"""``waybill bench eventstore``: event store, outbox relay and idempotent consumer throughput.

One run, on the embedded PostgreSQL + Kafka (started here on free ports in a temp dir, stopped
at the end) or on the servers named by ``WAYBILL_DATABASE_URL`` /
``WAYBILL_KAFKA_BOOTSTRAP_SERVERS``:

1. appends, 1 event per command, with 1 and with 16 concurrent writers: ``EventStore.append``
   (through SQLAlchemy, as services call it) next to a raw asyncpg loop that inserts the same
   event row + outbox row in one transaction, on the same server and tables;
2. the outbox relay draining everything those appends left in the outbox (committed row ->
   broker ack -> row deleted);
3. an idempotent consumer reading it all back: inbox rows recorded in one transaction per
   batch (``INSERT ... ON CONFLICT DO NOTHING``), offsets committed after the transaction.

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.cli.bench.machine import machine_facts, tree_cpu_s
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.db import create_databases, create_engine
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore import EventStore, NewEvent, define_common_tables
from waybill.common.outbox import OutboxRelay
from waybill.common.registry import EventRegistry
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import EmbeddedKafka, EmbeddedPostgres, free_port
from waybill.devstack.infra.kafka import KAFKA_VERSION, ensure_topics
from waybill.devstack.infra.network import free_port_pair

CASE_SECONDS = 5.0
WRITER_COUNTS = (1, 16)
TOPIC_PARTITIONS = 6
PAYLOAD = {"order_id": "", "sku": "SKU-1", "quantity": 2, "total": "19.98", "currency": "EUR"}
TARGETS = {"append_ratio": 0.7, "relay_events_per_s": 5_000, "consumer_events_per_s": 2_000}


@dataclass(frozen=True)
class Case:
    name: str
    events_per_s: float
    p50_ms: float
    p99_ms: float
    commands: int
    # CPU per appended event: this process (the client) plus the PostgreSQL server (its
    # backends and background processes). One writer is bound by commit latency, so events/s
    # hides the cost; this is the figure that compares two commits on a noisy machine.
    cpu_ms_per_event: float
    client_cpu_ms_per_event: float
    server_cpu_ms_per_event: float


@dataclass(frozen=True)
class Servers:
    server_url: str
    bootstrap_servers: str
    embedded: bool
    postgres_pid: int | None = None  # the embedded server's postmaster (None: external)


@contextlib.contextmanager
def _servers(console: Console) -> Iterator[Servers]:
    """The configured servers, or embedded ones on free ports in a temp dir for this run."""
    settings = WaybillSettings()
    root = Path(tempfile.mkdtemp(prefix="waybill-bench-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    try:
        with console.status("starting infrastructure") as status:
            server_url = settings.database_url
            if not server_url:
                postgres = EmbeddedPostgres(root / "postgres", free_port())
                postgres.start(progress=status.update)
                server_url = postgres.url
            bootstrap = settings.kafka_bootstrap_servers
            if not bootstrap:
                kafka = EmbeddedKafka(root / "kafka", free_port_pair(), partitions=TOPIC_PARTITIONS)
                kafka.start(progress=status.update)
                bootstrap = kafka.bootstrap_servers
        yield Servers(
            server_url,
            bootstrap,
            embedded=postgres is not None or kafka is not None,
            postgres_pid=postgres.pid if postgres is not None else None,
        )
    finally:
        with console.status("stopping infrastructure"):
            if kafka is not None:
                kafka.stop()
            if postgres is not None:
                postgres.stop()
            shutil.rmtree(root, ignore_errors=True)


def _quiet_logs() -> None:
    # The relay logs every batch at info level; a benchmark prints a table, not a log.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    logging.getLogger("faststream").setLevel(logging.WARNING)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def _timed_case(
    name: str,
    writers: int,
    command: Callable[[], Awaitable[None]],
    progress: Progress,
    task: TaskID,
    postgres_pid: int | None,
) -> Case:
    """Run ``command`` back to back in ``writers`` tasks for CASE_SECONDS; time each one."""
    latencies: list[float] = []
    deadline = time.perf_counter() + CASE_SECONDS

    async def writer() -> None:
        while (started := time.perf_counter()) < deadline:
            await command()
            latencies.append(time.perf_counter() - started)

    async def tick() -> None:
        while time.perf_counter() < deadline:
            progress.update(task, completed=CASE_SECONDS - (deadline - time.perf_counter()))
            await asyncio.sleep(0.1)

    started = time.perf_counter()
    client_cpu, server_cpu = time.process_time(), tree_cpu_s(postgres_pid)
    await asyncio.gather(tick(), *(writer() for _ in range(writers)))
    client_ms = (time.process_time() - client_cpu) * 1000 / max(1, len(latencies))
    server_ms = (tree_cpu_s(postgres_pid) - server_cpu) * 1000 / max(1, len(latencies))
    elapsed = time.perf_counter() - started
    progress.update(task, completed=CASE_SECONDS)
    latencies.sort()
    return Case(
        name=name,
        events_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(_percentile(latencies, 0.50) * 1000, 2),
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 2),
        commands=len(latencies),
        cpu_ms_per_event=round(client_ms + server_ms, 3),
        client_cpu_ms_per_event=round(client_ms, 3),
        server_cpu_ms_per_event=round(server_ms, 3),
    )


def _store_command(engine: AsyncEngine, store: EventStore) -> Callable[[], Awaitable[None]]:
    async def place_order() -> None:
        stream_id = f"order-{uuid.uuid4()}"
        async with engine.begin() as conn:
            await store.append(
                conn,
                stream_id=stream_id,
                stream_type="order",
                tenant_id="bench",
                events=[NewEvent("order.placed", {**PAYLOAD, "order_id": stream_id})],
                expected_version=0,
                correlation_id=stream_id,
            )

    return place_order


RAW_EVENT = (
    "INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,"
    " tenant_id, data, metadata, recorded_at)"
    " VALUES ($1, $2, 'order', 1, 'order.placed', 1, 'bench', $3::jsonb, $4::jsonb, $5)"
)
RAW_OUTBOX = (
    "INSERT INTO outbox (event_id, topic, key, value, headers) VALUES ($1, $2, $3, $4, $5::jsonb)"
)


def _raw_command(pool: asyncpg.Pool, topic: str) -> Callable[[], Awaitable[None]]:
    """The baseline: the same two rows, hand-written SQL, no library in between."""
    from datetime import UTC, datetime

    async def place_order() -> None:
        event_id = uuid.uuid4()
        stream_id = f"order-{uuid.uuid4()}"
        now = datetime.now(UTC)
        value = json.dumps({**PAYLOAD, "order_id": stream_id}, separators=(",", ":"))
        headers = json.dumps(
            [
                ["ce_id", str(event_id)],
                ["ce_source", "/waybill/bench"],
                ["ce_type", "order.placed"],
                ["ce_subject", stream_id],
                ["ce_time", now.isoformat()],
                ["ce_specversion", "1.0"],
                ["ce_tenantid", "bench"],
                ["ce_correlationid", stream_id],
                ["ce_sequence", "1"],
                ["ce_schemaversion", "1"],
            ]
        )
        metadata = json.dumps({"correlation_id": stream_id})
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(RAW_EVENT, event_id, stream_id, value, metadata, now)
            await conn.execute(
                RAW_OUTBOX, event_id, topic, stream_id.encode(), value.encode(), headers
            )

    return place_order


async def _append_cases(
    servers: Servers, database: str, topic: str, progress: Progress
) -> list[Case]:
    settings = WaybillSettings(database_url=servers.server_url)
    metadata = MetaData()
    events, outbox, _ = define_common_tables(metadata)
    engine = create_engine(settings.database_dsn(database), pool_size=max(WRITER_COUNTS))
    pool = await asyncpg.create_pool(
        settings.asyncpg_dsn(database), min_size=max(WRITER_COUNTS), max_size=max(WRITER_COUNTS)
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        store = EventStore(events, outbox, source="/waybill/bench", topic=topic)
        store_command = _store_command(engine, store)
        raw_command = _raw_command(pool, topic)
        warmup = progress.add_task("warm-up", total=200)
        for _ in range(100):  # connections opened, statements prepared, caches warm
            await asyncio.gather(store_command(), raw_command())
            progress.advance(warmup, 2)
        cases: list[Case] = []
        for writers in WRITER_COUNTS:
            label = "1 writer" if writers == 1 else f"{writers} writers"
            slug = label.replace(" ", "_")
            # Raw first at 1 writer, library first at 16: neither side always gets the
            # smaller tables.
            order = [("raw_asyncpg", raw_command), ("append", store_command)]
            for kind, command in order if writers == 1 else order[::-1]:
                name = f"{kind}_{slug}"
                task = progress.add_task(f"{name}", total=CASE_SECONDS)
                case = await _timed_case(
                    name, writers, command, progress, task, servers.postgres_pid
                )
                cases.append(case)
        return sorted(cases, key=lambda c: (c.name.split("_")[-2], not c.name.startswith("raw")))
    finally:
        await pool.close()
        await engine.dispose()


async def _outbox_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await conn.close()


async def _relay_rate(dsn: str, servers: Servers, progress: Progress) -> tuple[float, int]:
    """Events/s from committed outbox rows to broker acks, after the first batch."""
    backlog = await _outbox_rows(dsn)
    task = progress.add_task("outbox relay", total=backlog)
    relay = OutboxRelay(dsn, servers.bootstrap_servers, service="bench", poll_interval_s=0.2)
    running = asyncio.create_task(relay.run())
    try:
        # The clock starts at the first acknowledged batch: connecting, winning the advisory
        # lock and starting the producer are start-up costs, not throughput.
        deadline = time.monotonic() + 120
        while relay.published_total == 0:
            if time.monotonic() > deadline or running.done():
                raise RuntimeError("the relay published nothing")
            await asyncio.sleep(0.005)
        first, started = relay.published_total, time.perf_counter()
        while relay.published_total < backlog:
            if time.monotonic() > deadline or running.done():
                raise RuntimeError(f"relay stalled at {relay.published_total}/{backlog}")
            progress.update(task, completed=relay.published_total)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        progress.update(task, completed=backlog)
        return round((relay.published_total - first) / elapsed, 1), backlog
    finally:
        await relay.stop()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


class _AnyOrderEvent(BaseModel):
    """Accepts the bench's payload as a real consumer's schema would (validated, not counted)."""

    model_config = ConfigDict(extra="allow")
    order_id: str


async def _consumer_rate(
    dsn: str, servers: Servers, topic: str, total: int, progress: Progress
) -> float:
    """Events/s through the real consumer runtime: parsed, inbox-recorded, handled, committed."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    task = progress.add_task("idempotent consumer", total=total)
    registry = EventRegistry()
    registry.register("order.placed", _AnyOrderEvent)

    async def handle(conn: AsyncConnection, envelope: EventEnvelope, event: BaseModel) -> None:
        return None  # the runtime's own cost is what is measured

    engine = create_engine(dsn, pool_size=4)
    inbox = define_common_tables(MetaData())[2]
    consumer = EventConsumer(
        bootstrap_servers=servers.bootstrap_servers,
        group_id=group,
        topics=[topic],
        engine=engine,
        inbox=inbox,
        registry=registry,
        handler=handle,
        service="bench",
    )
    conn = await asyncpg.connect(dsn)
    count = "SELECT count(*) FROM inbox WHERE consumer_group = $1"
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        deadline = time.monotonic() + 180
        while seen < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumer stalled at {seen}/{total}")
            seen = int(await conn.fetchval(count, group))
            if seen and started is None:  # group join and first fetch are start-up
                started, first = time.perf_counter(), seen
            progress.update(task, completed=seen)
            await asyncio.sleep(0.05)
        assert started is not None
        return round((seen - first) / (time.perf_counter() - started), 1)
    finally:
        await consumer.stop()
        await conn.close()
        await engine.dispose()


async def _measure(servers: Servers, database: str, console: Console) -> dict[str, Any]:
    settings = WaybillSettings(database_url=servers.server_url)
    dsn = settings.asyncpg_dsn(database)
    topic = f"bench.eventstore.{uuid.uuid4().hex[:8]}"
    await ensure_topics(servers.bootstrap_servers, [topic], partitions=TOPIC_PARTITIONS)
    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        cases = await _append_cases(servers, database, topic, progress)
        relay_rate, published = await _relay_rate(dsn, servers, progress)
        consumer_rate = await _consumer_rate(dsn, servers, topic, published, progress)
    by_name = {case.name: case for case in cases}
    ratios = {
        f"append_{slug}_vs_raw": round(
            by_name[f"append_{slug}"].events_per_s / by_name[f"raw_asyncpg_{slug}"].events_per_s, 3
        )
        for slug in ("1_writer", "16_writers")
    }
    # CPU of an append as a multiple of the raw two-row transaction measured in the same run:
    # the calibration that makes figures of different machines comparable.
    cpu_ratios = {
        f"append_{slug}_cpu_vs_raw": round(
            by_name[f"append_{slug}"].cpu_ms_per_event
            / max(1e-9, by_name[f"raw_asyncpg_{slug}"].cpu_ms_per_event),
            3,
        )
        for slug in ("1_writer", "16_writers")
    }
    conn = await asyncpg.connect(servers.server_url)
    try:
        server_version = await conn.fetchval("SHOW server_version")
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
    return {
        "cases": [asdict(case) for case in cases],
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "relay_events_per_s": relay_rate,
        "consumer_events_per_s": consumer_rate,
        "events_relayed_and_consumed": published,
        "targets": TARGETS,
        "machine": _machine(servers, str(server_version)),
    }


def _machine(servers: Servers, postgres_version: str) -> dict[str, Any]:
    return {
        **machine_facts(),
        "postgres": postgres_version,
        "kafka": KAFKA_VERSION if servers.embedded else "external",
        "infrastructure": "embedded" if servers.embedded else "external",
        "case_seconds": CASE_SECONDS,
    }


def _print_table(console: Console, result: dict[str, Any]) -> None:
    table = RichTable(title="waybill bench eventstore")
    table.add_column("case")
    table.add_column("events/s", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("CPU ms/event", justify="right")
    table.add_column("client + server", justify="right")
    for case in result["cases"]:
        table.add_row(
            case["name"],
            f"{case['events_per_s']:,.0f}",
            f"{case['p50_ms']:.2f}",
            f"{case['p99_ms']:.2f}",
            f"{case['cpu_ms_per_event']:.3f}",
            f"{case['client_cpu_ms_per_event']:.3f} + {case['server_cpu_ms_per_event']:.3f}",
        )
    table.add_section()
    for name, ratio in result["ratios"].items():
        mark = "ok" if ratio >= TARGETS["append_ratio"] else "below target"
        table.add_row(
            f"{name} (target >= {TARGETS['append_ratio']})", f"{ratio:.2f}x  {mark}", "", "", "", ""
        )
    for key, label in (
        ("relay_events_per_s", "outbox relay"),
        ("consumer_events_per_s", "idempotent consumer"),
    ):
        mark = "ok" if result[key] >= TARGETS[key] else "below target"
        table.add_row(
            f"{label} (target >= {TARGETS[key]:,})", f"{result[key]:,.0f}  {mark}", "", "", "", ""
        )
    console.print(table)
    machine = result["machine"]
    console.print(
        f"{machine['cpu_count']} x {machine['cpu_model']}, Python {machine['python']}, "
        f"PostgreSQL {machine['postgres']}, Kafka {machine['kafka']} ({machine['infrastructure']})"
    )


def run(json_path: Path | None, console: Console) -> dict[str, Any]:
    """Run the whole benchmark once; print the table; write JSON to ``json_path`` if given."""
    _quiet_logs()
    database = f"bench_eventstore_{uuid.uuid4().hex[:8]}"
    with _servers(console) as servers:
        create_databases(servers.server_url, [database])
        result = asyncio.run(_measure(servers, database, console))
    _print_table(console, result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"results written to {json_path}")
    return result
