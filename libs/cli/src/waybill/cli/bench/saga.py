"""``waybill bench saga``: order -> payment saga throughput and place->paid latency.

Starts what ``waybill up`` starts (same ``Stack``: orders, payments, the sandbox's provider,
embedded PostgreSQL and Kafka) on free ports in a temporary state dir, then steps the offered
rate. Each step uses a fresh tenant and places ``pm_card_ok`` orders only, open loop (see
``waybill.cli.load``): the async tokens settle on the provider's timers by design, so their
place->paid time measures a timer, not the system. Per step:

- achieved/s: orders whose ``order.paid`` was recorded before the step's arrivals ended plus
  ``DRAIN_S``, divided by the step's duration;
- p50/p95/p99 place->paid: ``order.paid.recorded_at - order.placed.recorded_at`` of each paid
  order, read from its events once the step is over (nothing is polled per order meanwhile);
- errors: placements that failed or were dropped at the in-flight cap, and declined payments;
- CPU share of each process tree over the arrivals, as a fraction of the whole machine.

A step is sustained when achieved >= 95 % of offered and p99 < 250 ms. The run stops after the
first step that is clearly saturated (achieved < 80 % of offered) unless told to keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from waybill.cli.bench.machine import machine_facts, tree_cpu_s
from waybill.cli.load.client import LoadGenerator, Target, http_client, sku_names, stock_skus
from waybill.cli.load.outcomes import Outcome, fetch_outcomes, wait_settled
from waybill.cli.stack.lifecycle import Stack
from waybill.cli.stack.state import StateDir
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import free_port
from waybill.devstack.infra.kafka import KAFKA_VERSION
from waybill.devstack.topology import SERVICES, ServiceSpec

DRAIN_S = 5.0
P99_TARGET_MS = 250.0
SUSTAINED_RATIO = 0.95
SATURATED_RATIO = 0.80
SKUS = 50
BENCH_MIX = {"ok": 1.0}
LOAD_GENERATOR = "load generator"


def parse_steps(text: str) -> list[float]:
    """``"25,50,100"`` -> [25.0, 50.0, 100.0]; positive and increasing."""
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: expected comma-separated orders/s") from None
    if not rates or any(r <= 0 for r in rates) or rates != sorted(set(rates)):
        raise ValueError(f"{text!r}: expected positive, strictly increasing rates")
    return rates


# -- CPU accounting --------------------------------------------------------------------------


def machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(sum(times)) - float(times.idle) - float(getattr(times, "iowait", 0.0))


@dataclass(frozen=True)
class CpuSample:
    wall: float
    per_process: dict[str, float]
    machine_busy: float


def own_cpu_s() -> float:
    # Only this process: the stack's processes are its children and counted on their own.
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def cpu_sample(pids: Mapping[str, int | None]) -> CpuSample:
    per_process = {
        name: own_cpu_s() if pid == os.getpid() else tree_cpu_s(pid) for name, pid in pids.items()
    }
    return CpuSample(time.monotonic(), per_process, machine_busy_s())


def cpu_share(before: CpuSample, after: CpuSample, cpus: int) -> dict[str, float]:
    """Each process's share of the machine's capacity over the interval, plus other and idle."""
    capacity = max(after.wall - before.wall, 1e-9) * cpus
    shares = {
        name: max(after.per_process[name] - before.per_process.get(name, 0.0), 0.0) / capacity
        for name in after.per_process
    }
    busy = max(after.machine_busy - before.machine_busy, 0.0) / capacity
    shares["other"] = max(busy - sum(shares.values()), 0.0)
    shares["idle"] = max(1.0 - busy, 0.0)
    return {name: round(share, 3) for name, share in shares.items()}


def stack_pids(stack: Stack) -> dict[str, int | None]:
    pids: dict[str, int | None] = {service.name: service.pid for service in stack.services}
    pids["kafka"] = stack.kafka.pid if stack.kafka else None
    pids["postgres"] = stack.postgres.pid if stack.postgres else None
    pids[LOAD_GENERATOR] = os.getpid()
    return pids


# -- one step ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    offered_per_s: float
    achieved_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    cpu_share: dict[str, float]
    error_kinds: dict[str, int]
    placed: int
    paid: int
    placement_p99_ms: float

    @property
    def sustained(self) -> bool:
        return (
            self.achieved_per_s >= SUSTAINED_RATIO * self.offered_per_s
            and self.paid > 0
            and self.p99_ms < P99_TARGET_MS
        )

    @property
    def saturated(self) -> bool:
        return self.achieved_per_s < SATURATED_RATIO * self.offered_per_s


def score_step(
    offered_per_s: float,
    step_s: float,
    window_end_epoch: float,
    outcomes: Mapping[str, Outcome],
    *,
    placement_errors: Mapping[str, int],
    placement_p99_ms: float,
    cpu: dict[str, float],
) -> Step:
    """A step's figures from its orders' outcomes (pure: the unit tests feed it outcomes)."""
    from waybill.cli.load.stats import Latency

    paid = [o for o in outcomes.values() if o.status == "paid"]
    in_window = [o for o in paid if o.settled_at and o.settled_at.timestamp() <= window_end_epoch]
    latency = Latency.of(o.latency_s for o in paid if o.latency_s is not None)
    declined = sum(o.status == "payment_failed" for o in outcomes.values())
    return Step(
        offered_per_s=offered_per_s,
        achieved_per_s=round(len(in_window) / step_s, 1),
        p50_ms=latency.p50_ms,
        p95_ms=latency.p95_ms,
        p99_ms=latency.p99_ms,
        errors=sum(placement_errors.values()) + declined,
        cpu_share=cpu,
        error_kinds={**placement_errors, **({"payment_failed": declined} if declined else {})},
        placed=len(outcomes),
        paid=len(paid),
        placement_p99_ms=placement_p99_ms,
    )


async def _tenant_target(stack: Stack, client: httpx.AsyncClient, orders_url: str) -> Target:
    from waybill.common.auth import issue_key

    settings = stack.child_settings()
    tenant = f"bench-saga-{uuid.uuid4().hex[:8]}"
    service = await issue_key(settings, tenant_id=tenant, role="service")
    admin = await issue_key(settings, tenant_id=tenant, role="admin")
    skus = sku_names(SKUS)
    await stock_skus(client, orders_url, admin.key, skus)
    return Target(orders_url, service.key, skus)


async def run_step(
    stack: Stack,
    client: httpx.AsyncClient,
    orders_url: str,
    rate: float,
    step_s: float,
    concurrency: int,
    report: Callable[[LoadGenerator], None],
) -> Step:
    from waybill.cli.load.stats import Latency

    target = await _tenant_target(stack, client, orders_url)
    generator = LoadGenerator(client, target, concurrency=concurrency)
    pids = stack_pids(stack)
    before = cpu_sample(pids)
    started_epoch = time.time()
    placing = asyncio.create_task(generator.run(rate, step_s, BENCH_MIX))
    while not placing.done():
        report(generator)
        await asyncio.wait({placing}, timeout=0.25)
    await placing
    after = cpu_sample(pids)
    report(generator)
    window_end = started_epoch + step_s + DRAIN_S
    await wait_settled(client, target, time.monotonic() + max(window_end - time.time(), 0.0))
    placed = [p.order_id for p in generator.placements if p.order_id is not None]
    outcomes = await fetch_outcomes(client, target, placed)
    placing_latency = Latency.of(
        p.latency_s for p in generator.placements if p.order_id and p.latency_s
    )
    return score_step(
        rate,
        step_s,
        window_end,
        outcomes,
        placement_errors=dict(generator.counters.errors),
        placement_p99_ms=placing_latency.p99_ms,
        cpu=cpu_share(before, after, os.cpu_count() or 1),
    )


# -- the run -------------------------------------------------------------------------------------


def runnable_specs(console: Console) -> tuple[ServiceSpec, ...]:
    """Every service of ``waybill up`` that can start (a service still being built is skipped)."""
    specs = []
    for spec in SERVICES:
        try:
            startable = importlib.util.find_spec(f"{spec.module}.__main__") is not None
        except ModuleNotFoundError:  # the package itself is not installed yet
            startable = False
        if not startable:
            console.print(f"[yellow]skipping {spec.name}: {spec.module} has no __main__ yet[/]")
            continue
        specs.append(spec)
    return tuple(specs)


@contextlib.contextmanager
def _stack(console: Console) -> Any:
    root = Path(tempfile.mkdtemp(prefix="waybill-bench-saga-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    settings = WaybillSettings(state_dir=root, postgres_port=free_port(), kafka_port=free_port())
    specs = runnable_specs(console)
    environ = {**os.environ, **{spec.port_env: str(free_port()) for spec in SERVICES}}
    state = StateDir(root)
    state.create()
    stack = Stack(settings, state, specs=specs, environ=environ)
    try:
        with console.status("starting the stack") as status:
            stack.start(status.update)
        console.print(
            "stack: " + ", ".join(f"{name} pid {pid}" for name, pid in stack_pids(stack).items())
        )
        yield stack
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)


WARM_UP_RATE = 20.0
WARM_UP_S = 20.0


async def _steps(
    stack: Stack,
    console: Console,
    rates: Sequence[float],
    step_s: float,
    concurrency: int,
    stop_at_saturation: bool,
) -> list[Step]:
    orders = next(s for s in stack.services if s.name == "orders")
    steps: list[Step] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
    )
    async with http_client(concurrency) as client:
        with Progress(*columns, console=console) as progress:
            # Discarded warm-up: a freshly started stack pays JIT compilation (Kafka's JVM),
            # connection pools and caches first; the steps should measure the steady state.
            warm = progress.add_task("warm-up (discarded)", total=None, line="")
            await run_step(
                stack, client, orders.url, WARM_UP_RATE, WARM_UP_S, concurrency, lambda _: None
            )
            progress.update(warm, total=1, completed=1, line="done")
            for rate in rates:
                task = progress.add_task(f"{rate:g} orders/s", total=rate * step_s, line="")

                def report(generator: LoadGenerator, task_id: Any = task) -> None:
                    c = generator.counters
                    progress.update(
                        task_id,
                        completed=len(generator.placements),
                        line=f"placed {c.placed:,}  in flight {c.in_flight}  "
                        f"errors {sum(c.errors.values()):,}",
                    )

                step = await run_step(stack, client, orders.url, rate, step_s, concurrency, report)
                progress.update(
                    task,
                    line=f"achieved {step.achieved_per_s:g}/s  p99 {step.p99_ms:,.0f} ms  "
                    f"errors {step.errors}  {'sustained' if step.sustained else 'not sustained'}",
                )
                steps.append(step)
                if stop_at_saturation and step.saturated:
                    break
    return steps


async def _postgres_version(server_url: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _machine(stack: Stack, step_s: float, concurrency: int) -> dict[str, Any]:
    return {
        **machine_facts(),
        "postgres": asyncio.run(_postgres_version(stack.server_url)),
        "kafka": KAFKA_VERSION if stack.kafka else "external",
        "services": [s.name for s in stack.services],
        "step_s": step_s,
        "drain_s": DRAIN_S,
        "concurrency": concurrency,
        "mix": BENCH_MIX,
    }


def max_sustained(steps: Sequence[Step]) -> float | None:
    """The highest offered rate the stack kept up with (achieved >= 95 %, p99 < 250 ms)."""
    return max((s.offered_per_s for s in steps if s.sustained), default=None)


def print_table(console: Console, result: Mapping[str, Any]) -> None:
    table = Table(title="waybill bench saga (pm_card_ok orders; place->paid from event times)")
    for column in ("offered/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "errors", "ok"):
        table.add_column(column, justify="right")
    table.add_column("CPU share of the machine")
    for step in result["steps"]:
        busiest = sorted(step["cpu_share"].items(), key=lambda kv: -kv[1])
        table.add_row(
            f"{step['offered_per_s']:g}",
            f"{step['achieved_per_s']:g}",
            *(f"{step[k]:,.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")),
            f"{step['errors']:,}"
            + (
                " (" + ", ".join(f"{k} {v}" for k, v in sorted(step["error_kinds"].items())) + ")"
                if step["errors"]
                else ""
            ),
            "yes" if step["sustained"] else "no",
            ", ".join(f"{name} {share:.0%}" for name, share in busiest if share >= 0.01),
        )
    console.print(table)
    console.print(f"max sustained: {result['max_sustained_per_s'] or 'none'} orders/s")


def write_chart(path: Path, steps: Sequence[Mapping[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    achieved = [s["achieved_per_s"] for s in steps]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        axes.plot(achieved, [s[key] for s in steps], marker="o", label=label)
    axes.axhline(P99_TARGET_MS, color="red", linestyle="--", label="p99 target 250 ms")
    for s in steps:
        axes.annotate(
            f"{s['offered_per_s']:g} offered",
            (s["achieved_per_s"], s["p99_ms"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    axes.set_xlabel("achieved orders/s (paid)")
    axes.set_ylabel("place -> paid latency, ms")
    axes.set_yscale("log")
    axes.set_title("waybill bench saga")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def run(
    json_path: Path | None,
    console: Console,
    *,
    rates: Sequence[float],
    step_s: float,
    chart_path: Path | None = None,
    concurrency: int = 128,
    stop_at_saturation: bool = True,
) -> dict[str, Any]:
    with _stack(console) as stack:
        steps = asyncio.run(_steps(stack, console, rates, step_s, concurrency, stop_at_saturation))
        machine = _machine(stack, step_s, concurrency)
    step_rows = [{**asdict(s), "sustained": s.sustained} for s in steps]
    result = {
        "steps": step_rows,
        "max_sustained_per_s": max_sustained(steps),
        "targets": {"p99_ms": P99_TARGET_MS, "achieved_ratio": SUSTAINED_RATIO},
        "machine": machine,
    }
    print_table(console, result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"results written to {json_path}")
    if chart_path is not None and steps:
        write_chart(chart_path, step_rows)
        console.print(f"chart written to {chart_path}")
    return result
