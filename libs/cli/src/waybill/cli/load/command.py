"""``waybill load``: find the stack and keys, run the schedule with live progress, summarise."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from waybill.cli.load.agents import AgentFleet
from waybill.cli.load.client import LoadGenerator, Target, http_client, sku_names, stock_skus
from waybill.cli.load.outcomes import SettlementWatcher, fetch_outcomes, pending_payment_left
from waybill.cli.load.output import print_summary, status_line
from waybill.cli.load.schedule import LoadOptions
from waybill.cli.load.stats import RateWindow, summarise
from waybill.cli.stack.state import StateDir, running_stack
from waybill.common import ports
from waybill.common.settings import WaybillSettings


@dataclass(frozen=True)
class Credentials:
    """A service key to place with, and an admin key to stock with (None: already stocked)."""

    url: str
    service_key: str
    admin_key: str | None
    tenant_id: str | None = None


async def issue_load_credentials(settings: WaybillSettings, url: str) -> Credentials:
    """A fresh tenant ``load-<random>`` with a service and an admin key on the running stack."""
    from waybill.cli.keys import Role, create_key

    tenant = f"load-{uuid.uuid4().hex[:8]}"
    service = await create_key(settings, tenant_id=tenant, role=Role.service, agent_id=None)
    admin = await create_key(settings, tenant_id=tenant, role=Role.admin, agent_id=None)
    return Credentials(url, service.key, admin.key, tenant)


def service_url(settings: WaybillSettings, name: str) -> str | None:
    """The URL of service ``name`` recorded in the running stack's ``up.json``, if any."""
    record = running_stack(StateDir(settings.state_dir))
    process = record.processes.get(name) if record else None
    return process.url if process else None


def orders_url(settings: WaybillSettings) -> str | None:
    return service_url(settings, "orders")


async def _run(
    creds: Credentials, options: LoadOptions, console: Console, shipping_url: str
) -> dict[str, Any]:
    skus = sku_names(options.sku_count)
    target = Target(creds.url, creds.service_key, skus)
    async with http_client(options.concurrency) as client:
        if creds.admin_key is not None:
            await stock_skus(client, creds.url, creds.admin_key, skus)
        fleet = None
        if options.agents:
            if creds.admin_key is None:
                raise ValueError("--agents needs an admin key (--admin-key) to add agents with")
            fleet = await AgentFleet.enlist(client, shipping_url, creds.admin_key, options.agents)
            delivering = asyncio.create_task(fleet.run())
        watcher = SettlementWatcher(client, target)
        generator = LoadGenerator(
            client, target, concurrency=options.concurrency, on_placed=watcher.track
        )
        window = RateWindow()
        started = time.monotonic()
        watching = asyncio.create_task(watcher.run())
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            placing = asyncio.create_task(
                generator.run(options.rate_per_s, options.duration_s, options.mix)
            )
            deadline: float | None = None
            while True:
                elapsed = time.monotonic() - started
                line = status_line(generator, watcher, window, elapsed)
                if fleet is not None:
                    line += f"  delivered {len(fleet.delivered):,}"
                live.update(Text(line))
                if placing.done() and deadline is None:
                    await placing  # re-raises what the generator raised
                    deadline = time.monotonic() + options.drain_s
                if deadline is not None and (
                    time.monotonic() >= deadline or not await pending_payment_left(client, target)
                ):
                    break
                await asyncio.sleep(0.25)
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        placed = [p for p in generator.placements if p.order_id is not None]
        with console.status(f"reading the events of {len(placed):,} orders"):
            outcomes = await fetch_outcomes(
                client, target, (p.order_id for p in placed if p.order_id)
            )
        if fleet is not None:
            # Every paid order (now known exactly) on to delivered, within what is left of
            # the drain time (at least a few seconds: shipping starts after payment).
            paid = sum(o.status == "paid" for o in outcomes.values())
            left = max(5.0, (deadline or time.monotonic()) - time.monotonic())
            with console.status(f"delivering {paid:,} paid orders"):
                await fleet.wait_delivered(paid, timeout_s=left)
            fleet.stop()
            await delivering
    result = summarise(generator.placements, outcomes, options, tenant_id=creds.tenant_id)
    if fleet is not None:
        result["delivery"] = fleet.summary()
    return result


def run(
    creds: Credentials | None,
    settings: WaybillSettings,
    options: LoadOptions,
    console: Console,
    *,
    url: str | None = None,
) -> dict[str, Any]:
    """Resolve the stack and keys (unless given), run the load, print the summary."""
    if creds is None:
        target_url = url or orders_url(settings) or f"http://127.0.0.1:{ports.ORDERS}"
        creds = asyncio.run(issue_load_credentials(settings, target_url))
        console.print(f"tenant {creds.tenant_id}, orders at {creds.url}")
    shipping = service_url(settings, "shipping") or f"http://127.0.0.1:{ports.SHIPPING}"
    result = asyncio.run(_run(creds, options, console, shipping))
    print_summary(console, result)
    return result
