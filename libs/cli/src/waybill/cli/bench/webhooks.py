"""``waybill bench webhooks``: the notifier's webhook deliveries, per delivery, on real infra.

Starts embedded PostgreSQL and Kafka and the notifier alone (its consumer, deliveries worker
and outbox relay run in its process) through the same ``Stack`` as ``waybill up``, on free
ports in a temporary state dir. In this process: a receiver (``bench.receiver``: records the
arrival of each ``webhook-id``, verifies nothing), one tenant, E endpoints subscribed to
``order.cancelled``; some answer 500 when ``--failing-share`` says so. Then N
``order.cancelled`` records go to Kafka as orders would publish them (as fast as possible, or
at ``--rate``), and the run waits until every message (E per event) has arrived: once for a
healthy endpoint, once per attempt of the schedule for a failing one.

Figures, over the window from the first publish to the last arrival:

- deliveries/s and published -> received latency (p50/p95/p99) of the healthy endpoints;
- notifier CPU-ms per delivery: the notifier's process tree plus the PostgreSQL backends
  connected to its database (``pg_stat_activity.datname``, sampled every half second: a
  backend that ends between two samples loses at most its last half second);
- the harness's CPU (this process; the receiver's thread apart), so it is seen not to matter;
- PostgreSQL commits per delivery: ``pg_stat_database.xact_commit`` of the notifier's database
  (read after ``STATS_FLUSH_S``: backends report their counts up to 10 s after going idle),
  with the idle rate measured before the run, since the notifier's pollers commit at idle too;
- with failing endpoints: attempts, succeeded, exhausted (the notifier's own records, through
  its API) and the observed gaps between the attempts of one message vs the configured delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from waybill.cli.bench.machine import machine_facts, tree_cpu_s
from waybill.cli.bench.receiver import WebhookReceiver
from waybill.cli.bench.webhook_figures import delivery_figures, latency_points
from waybill.cli.stack.lifecycle import Stack
from waybill.cli.stack.state import StateDir
from waybill.common import topics
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.settings import WaybillSettings, service_database
from waybill.devstack.infra import free_port
from waybill.devstack.infra.kafka import KAFKA_VERSION
from waybill.devstack.records import envelope
from waybill.devstack.topology import service

NOTIFIER = "notifier"
NOTIFIER_DATABASE = service_database(NOTIFIER)
# PostgreSQL (15+) reports a backend's counts when it goes idle, at most once a second, else
# after 10 s idle: read pg_stat_database this long after the work, not at once.
STATS_FLUSH_S = 11.0
IDLE_S = 10.0  # the notifier at rest (its pollers commit too): the idle commits/s
SAMPLE_S = 0.5
WARM_UP_EVENTS = 50
PAGE = 200


@dataclass(frozen=True)
class Options:
    events: int = 2000
    endpoints: int = 4
    rate: float | None = None  # offered events/s; None: as fast as possible
    failing_share: float = 0.0
    retry_schedule_s: str = "1,1"
    timeout_s: float = 600.0
    warm_up_events: int = WARM_UP_EVENTS

    @property
    def delays(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self.retry_schedule_s.split(",") if d.strip())

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    @property
    def failing_endpoints(self) -> int:
        """At least one when the share is positive (0.1 of 4 endpoints is one, not none)."""
        if self.failing_share <= 0:
            return 0
        return min(self.endpoints, max(1, round(self.endpoints * self.failing_share)))

    def paths(self) -> tuple[list[str], list[str]]:
        failing = self.failing_endpoints
        healthy = [f"/ep{i}/ok" for i in range(failing, self.endpoints)]
        return healthy, [f"/ep{i}/fail" for i in range(failing)]

    def notifier_env(self) -> dict[str, str]:
        return {
            "WAYBILL_NOTIFIER_RETRY_SCHEDULE_S": self.retry_schedule_s,
            # The breaker would hold a failing endpoint's messages back (unattempted) for its
            # reset after 5 failures in a row; here their messages are to go through the
            # schedule, so it never opens. A run of its own would measure the breaker.
            "WAYBILL_NOTIFIER_BREAKER_FAILURES": str(10**9),
        }


# -- CPU and commits ------------------------------------------------------------------------


class BackendCpu:
    """CPU seconds of the PostgreSQL backends of one database, since ``start()``."""

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self.conn = conn
        self.database = database
        self.baseline: dict[int, float] = {}
        self.latest: dict[int, float] = {}

    async def _cpu_by_pid(self) -> dict[int, float]:
        pids = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database
        )
        found = {}
        for row in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = psutil.Process(row["pid"]).cpu_times()
                found[row["pid"]] = float(times.user + times.system)
        return found

    async def start(self) -> None:
        self.baseline = await self._cpu_by_pid()
        self.latest = dict(self.baseline)

    async def sample(self) -> None:
        self.latest.update(await self._cpu_by_pid())

    def used_s(self) -> float:
        # A backend first seen after start() was born after it: its whole time counts.
        return sum(cpu - self.baseline.get(pid, 0.0) for pid, cpu in self.latest.items())


async def commits(conn: asyncpg.Connection, database: str) -> int:
    return int(
        await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database)
    )


def own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class CpuMark:
    notifier_process: float
    notifier_backends: float
    postgres_all: float
    kafka: float
    harness: float
    receiver: float


def cpu_mark(stack: Stack, backends: BackendCpu, receiver: WebhookReceiver) -> CpuMark:
    notifier = next(s for s in stack.services if s.name == NOTIFIER)
    return CpuMark(
        tree_cpu_s(notifier.pid),
        backends.used_s(),
        tree_cpu_s(stack.postgres.pid if stack.postgres else None),
        tree_cpu_s(stack.kafka.pid if stack.kafka else None),
        own_cpu_s(),
        receiver.cpu_s(),
    )


# -- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def notifier_stack(console: Console, options: Options) -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="waybill-bench-webhooks-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    settings = WaybillSettings(state_dir=root, postgres_port=free_port(), kafka_port=free_port())
    spec = service(NOTIFIER)
    environ = {**os.environ, spec.port_env: str(free_port()), **options.notifier_env()}
    state = StateDir(root)
    state.create()
    stack = Stack(settings, state, specs=(spec,), environ=environ)
    try:
        with console.status("starting PostgreSQL, Kafka and the notifier") as status:
            stack.start(status.update)
        yield stack
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _tenant_client(stack: Stack) -> tuple[str, httpx.AsyncClient]:
    from waybill.common.auth import issue_key

    tenant = f"bench-webhooks-{uuid.uuid4().hex[:8]}"
    key = await issue_key(stack.child_settings(), tenant_id=tenant, role="service")
    notifier = next(s for s in stack.services if s.name == NOTIFIER)
    client = httpx.AsyncClient(
        base_url=notifier.url, headers={"Authorization": f"Bearer {key.key}"}, timeout=30
    )
    return tenant, client


async def _create_endpoints(
    client: httpx.AsyncClient, receiver: WebhookReceiver, paths: list[str]
) -> list[str]:
    ids = []
    for path in paths:
        response = await client.post(
            "/webhook-endpoints",
            json={"url": receiver.url(path), "event_types": ["order.cancelled"]},
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


async def _publish(
    producer: AIOKafkaProducer,
    tenant: str,
    count: int,
    rate: float | None,
    on_sent: Callable[[int], None],
) -> dict[str, float]:
    """``count`` order.cancelled records; order id -> time.time() when handed to the producer."""
    published: dict[str, float] = {}
    acks = []
    started = time.monotonic()
    for i in range(count):
        if rate is not None:
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        order_id = f"ord_{uuid.uuid4().hex}"
        record = envelope(
            OrderCancelled(order_id=order_id, reason="requested"),
            tenant_id=tenant,
            subject=order_id,
            sequence=3,
        )
        key, value, headers = record.to_kafka()
        published[order_id] = time.time()
        acks.append(await producer.send(topics.ORDERS_EVENTS, value, key=key, headers=headers))
        if i % 50 == 0:
            on_sent(i + 1)
    await asyncio.gather(*acks)
    on_sent(count)
    return published


async def _wait_arrivals(
    receiver: WebhookReceiver,
    mark: int,
    expected: int,
    deadline: float,
    on_tick: Callable[[int], Any],
) -> bool:
    while time.monotonic() < deadline:
        got = len(receiver.arrivals) - mark
        await on_tick(got)
        if got >= expected:
            return True
        await asyncio.sleep(SAMPLE_S)
    return False


async def _notifier_view(
    client: httpx.AsyncClient, endpoint_ids: list[str], webhook_ids: set[str]
) -> dict[str, int]:
    """The notifier's own record of the run's messages: statuses and attempts."""
    counts = {"messages": 0, "attempts": 0, "succeeded": 0, "exhausted": 0, "pending": 0}
    for endpoint_id in endpoint_ids:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
            response = await client.get(
                f"/webhook-endpoints/{endpoint_id}/deliveries", params=params
            )
            response.raise_for_status()
            page = response.json()
            for item in page["items"]:
                if item["message_id"] not in webhook_ids:
                    continue
                counts["messages"] += 1
                counts["attempts"] += len(item["attempts"])
                status = {"failed": "exhausted"}.get(item["status"], item["status"])
                counts[status] = counts.get(status, 0) + 1
            cursor = page["next_cursor"]
            if not cursor:
                break
    return counts


async def measure(stack: Stack, console: Console, options: Options) -> dict[str, Any]:
    healthy_paths, failing_paths = options.paths()
    receiver = WebhookReceiver(failing=frozenset(failing_paths))
    receiver.start()
    conn = await asyncpg.connect(stack.server_url)  # the maintenance database, not the notifier's
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    tenant, client = await _tenant_client(stack)
    try:
        endpoint_ids = await _create_endpoints(client, receiver, healthy_paths + failing_paths)
        per_event = len(healthy_paths) + len(failing_paths) * options.max_attempts
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
        )
        with Progress(*columns, console=console) as progress:
            # Discarded: the first deliveries pay connections, caches and the consumer's join.
            warm = progress.add_task(
                "warm-up (discarded)", total=options.warm_up_events * per_event, line=""
            )
            mark = len(receiver.arrivals)
            await _publish(producer, tenant, options.warm_up_events, None, lambda _: None)

            async def warm_tick(got: int) -> None:
                progress.update(warm, completed=got)

            await _wait_arrivals(
                receiver,
                mark,
                options.warm_up_events * per_event,
                time.monotonic() + options.timeout_s,
                warm_tick,
            )
            rest = progress.add_task("notifier at rest", total=STATS_FLUSH_S + IDLE_S, line="")
            for _ in range(int(STATS_FLUSH_S / SAMPLE_S)):
                await asyncio.sleep(SAMPLE_S)
                progress.advance(rest, SAMPLE_S)
            idle_from = await commits(conn, NOTIFIER_DATABASE), time.monotonic()
            for _ in range(int(IDLE_S / SAMPLE_S)):
                await asyncio.sleep(SAMPLE_S)
                progress.advance(rest, SAMPLE_S)
            before_commits = await commits(conn, NOTIFIER_DATABASE)
            idle_per_s = (before_commits - idle_from[0]) / (time.monotonic() - idle_from[1])

            backends = BackendCpu(conn, NOTIFIER_DATABASE)
            await backends.start()
            before = cpu_mark(stack, backends, receiver)
            mark = len(receiver.arrivals)
            expected = options.events * per_event
            sending = progress.add_task("publishing order.cancelled", total=options.events, line="")
            receiving = progress.add_task("received (attempts)", total=expected, line="")
            started = time.monotonic()
            publishing = asyncio.create_task(
                _publish(
                    producer,
                    tenant,
                    options.events,
                    options.rate,
                    lambda n: progress.update(sending, completed=n),
                )
            )

            async def tick(got: int) -> None:
                await backends.sample()
                elapsed = max(time.monotonic() - started, 1e-9)
                progress.update(receiving, completed=got, line=f"{got / elapsed:,.0f} requests/s")

            complete = await _wait_arrivals(
                receiver, mark, expected, time.monotonic() + options.timeout_s, tick
            )
            published = await publishing
            await backends.sample()
            after = cpu_mark(stack, backends, receiver)
            window_wall_s = time.monotonic() - started
            flush = progress.add_task("PostgreSQL stats flush", total=STATS_FLUSH_S, line="")
            for _ in range(int(STATS_FLUSH_S / SAMPLE_S)):
                await asyncio.sleep(SAMPLE_S)
                progress.advance(flush, SAMPLE_S)
            after_commits = await commits(conn, NOTIFIER_DATABASE)
        run_arrivals = receiver.arrivals[mark:]
        view = await _notifier_view(client, endpoint_ids, {a.webhook_id for a in run_arrivals})
    finally:
        await client.aclose()
        await producer.stop()
        await conn.close()
        receiver.stop()

    figures = delivery_figures(
        run_arrivals,
        published,
        healthy_paths=healthy_paths,
        failing_paths=failing_paths,
        max_attempts=options.max_attempts,
        delays=options.delays,
    )
    cpu = {k: round(getattr(after, k) - getattr(before, k), 3) for k in asdict(after)}
    settled = view["succeeded"] + view["exhausted"]
    notifier_s = cpu["notifier_process"] + cpu["notifier_backends"]
    commit_count = after_commits - before_commits
    idle_commits = idle_per_s * (window_wall_s + STATS_FLUSH_S)
    return {
        "complete": complete,
        "options": asdict(options) | {"failing_endpoints": options.failing_endpoints},
        **figures,
        "notifier": view,
        "cpu_s": cpu,
        "cpu_ms": {
            "notifier_per_delivery": _per(notifier_s * 1000, settled),
            "notifier_per_attempt": _per(notifier_s * 1000, view["attempts"]),
            "notifier_process_per_delivery": _per(cpu["notifier_process"] * 1000, settled),
            "notifier_backends_per_delivery": _per(cpu["notifier_backends"] * 1000, settled),
            "harness_per_delivery": _per(cpu["harness"] * 1000, settled),
            "receiver_per_request": _per(cpu["receiver"] * 1000, len(run_arrivals)),
        },
        "commits": {
            "notifier_database": commit_count,
            "per_delivery": _per(commit_count, settled),
            "per_attempt": _per(commit_count, view["attempts"]),
            "idle_per_s": round(idle_per_s, 2),
            "per_delivery_less_idle": _per(commit_count - idle_commits, settled),
        },
        "window_wall_s": round(window_wall_s, 3),
        "latency_points": latency_points(run_arrivals, published, healthy_paths),
    }


def _per(total: float, count: int) -> float | None:
    return round(total / count, 3) if count else None


async def _postgres_version(server_url: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def machine(stack: Stack) -> dict[str, Any]:
    return {
        **machine_facts(),
        "postgres": asyncio.run(_postgres_version(stack.server_url)),
        "kafka": KAFKA_VERSION if stack.kafka else "external",
        "shared": "2 cores shared with other work: prefer CPU-ms and commits per delivery to rates",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def run(
    json_path: Path | None,
    console: Console,
    options: Options,
    *,
    chart_path: Path | None = None,
) -> dict[str, Any]:
    from waybill.cli.bench.webhook_report import print_result, write_chart

    with notifier_stack(console, options) as stack:
        result = asyncio.run(measure(stack, console, options))
        result["machine"] = machine(stack)
    points = result.pop("latency_points")
    print_result(console, result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"results written to {json_path}")
    if chart_path is not None and points:
        write_chart(chart_path, points, result)
        console.print(f"chart written to {chart_path}")
    return result
