"""``waybill load``: place orders over HTTP at an offered rate and report how they settle.

Open loop: arrivals follow a fixed schedule (order ``i`` is due at ``i / rate`` s), whatever
the latency, so a slow stack cannot slow the offered rate down and hide its own queueing
(coordinated omission). Requests in flight are capped; an arrival that finds the cap full is
not sent and counts as ``dropped``. Placement latency is measured from the arrival's *due*
time, so time spent waiting for the event loop is part of it.

Settling is measured twice: live and approximate (newest-first pages of paid / failed orders,
for the progress line), then exactly at the end from each order's own events
(``order.placed`` -> ``order.paid`` / ``order.payment_failed``, both ``recorded_at`` set by
the orders service). ``waybill bench saga`` reuses the generator and the event reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table as RichTable
from rich.text import Text
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from waybill.cli.state import StateDir, running_stack
from waybill.common import ports
from waybill.common.settings import WaybillSettings

# The four payment-method tokens of the sandbox's provider (docs/sandbox.md), by mix name.
TOKENS: dict[str, str] = {
    "ok": "pm_card_ok",
    "declined": "pm_card_declined",
    "async": "pm_card_async",
    "async_silent": "pm_card_async_silent",
}
DEFAULT_MIX = "ok=0.7,declined=0.1,async=0.15,async_silent=0.05"
SETTLED_TYPES = {"order.paid": "paid", "order.payment_failed": "payment_failed"}
PLACED_TYPE = "order.placed"
DROPPED = "dropped"
PAGE_LIMIT = 200  # the API's maximum page size
SKU_UNITS = 1_000_000_000  # the API's maximum stock level: the load never runs out


# -- pure parts: mix, schedule, percentiles ------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """``"ok=0.7,declined=0.3"`` -> weights normalised to sum 1; ValueError names the problem."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in TOKENS:
            raise ValueError(f"{part!r}: expected NAME=WEIGHT with NAME one of {', '.join(TOKENS)}")
        if name in weights:
            raise ValueError(f"{name!r} appears twice")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{part!r}: the weight is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{part!r}: the weight must be a finite number >= 0")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return {name: w / total for name, w in weights.items() if w > 0}


def arrival_offsets(rate_per_s: float, duration_s: float) -> list[float]:
    """Due times (s from the start) of an evenly spaced open-loop schedule."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    count = math.floor(rate_per_s * duration_s + 1e-9)
    return [i / rate_per_s for i in range(count)]


def assign_kinds(mix: Mapping[str, float], count: int, rng: random.Random) -> list[str]:
    """A payment kind per arrival, drawn at the mix's weights."""
    names = list(mix)
    return rng.choices(names, weights=[mix[n] for n in names], k=count)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not sorted_values:
        return 0.0
    position = fraction * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Latency:
        values = sorted(seconds)
        p50, p95, p99 = (round(percentile(values, q) * 1000, 1) for q in (0.5, 0.95, 0.99))
        return cls(count=len(values), p50_ms=p50, p95_ms=p95, p99_ms=p99)


# -- one order's fate, from its events ------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How an order ended, by its own event times (server clock, one clock for both)."""

    status: str  # "paid" | "payment_failed" | "unsettled"
    placed_at: datetime | None
    settled_at: datetime | None

    @property
    def latency_s(self) -> float | None:
        if self.placed_at is None or self.settled_at is None:
            return None
        return (self.settled_at - self.placed_at).total_seconds()


def outcome_from_events(items: Sequence[Mapping[str, Any]]) -> Outcome:
    """The first settling event after ``order.placed`` decides (later ones cannot undo it)."""
    placed_at: datetime | None = None
    for item in sorted(items, key=lambda i: int(i["version"])):
        recorded_at = datetime.fromisoformat(str(item["recorded_at"]))
        if item["type"] == PLACED_TYPE:
            placed_at = recorded_at
        elif item["type"] in SETTLED_TYPES:
            return Outcome(SETTLED_TYPES[item["type"]], placed_at, recorded_at)
    return Outcome("unsettled", placed_at, None)


# -- talking to the stack ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where to place orders, as whom, and which skus (each stocked generously)."""

    url: str
    service_key: str
    skus: tuple[str, ...]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.service_key}"}


def sku_names(count: int) -> tuple[str, ...]:
    # Several skus: a placement locks its sku's stock row, so one sku would serialise the load.
    return tuple(f"LOAD-{i:03d}" for i in range(count))


async def stock_skus(
    client: httpx.AsyncClient, url: str, admin_key: str, skus: Iterable[str]
) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    for sku in skus:
        response = await client.put(
            f"{url}/inventory/{sku}", json={"available": SKU_UNITS}, headers=headers
        )
        response.raise_for_status()


def order_body(sku: str, token: str) -> dict[str, Any]:
    return {
        "customer": {"id": f"load-{uuid.uuid4().hex[:12]}", "email": "load@example.com"},
        "items": [{"sku": sku, "quantity": 1, "unit_price_cents": 1999}],
        "currency": "EUR",
        "shipping_address": {
            "line1": "1 Load Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "payment_method": token,
    }


def error_kind(response: httpx.Response) -> str:
    """``http_<status>`` plus the problem code when the body is problem+json."""
    code = None
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
    return f"http_{response.status_code}" + (f"_{code}" if code else "")


@dataclass
class Placement:
    kind: str
    due: float  # monotonic due time of the arrival
    order_id: str | None = None
    latency_s: float | None = None
    error: str | None = None
    placed_wall: float | None = None  # time.time() when the 201 arrived


@dataclass
class LoadCounters:
    sent: int = 0
    placed: int = 0
    in_flight: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class LoadGenerator:
    """Places orders on an open-loop schedule through one pooled ``httpx.AsyncClient``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: Target,
        *,
        concurrency: int,
        rng: random.Random | None = None,
        on_placed: Callable[[Placement], None] | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.on_placed = on_placed
        self.counters = LoadCounters()
        self.placements: list[Placement] = []

    async def run(self, rate_per_s: float, duration_s: float, mix: Mapping[str, float]) -> None:
        """Send the schedule; returns once every sent request has its answer."""
        offsets = arrival_offsets(rate_per_s, duration_s)
        kinds = assign_kinds(mix, len(offsets), self.rng)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        for offset, kind in zip(offsets, kinds, strict=True):
            due = start + offset
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            placement = Placement(kind=kind, due=due)
            self.placements.append(placement)
            if self.counters.in_flight >= self.concurrency:
                placement.error = DROPPED
                self.counters.errors[DROPPED] += 1
                continue
            self.counters.in_flight += 1
            self.counters.sent += 1
            task = asyncio.create_task(self._place(placement))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    async def _place(self, placement: Placement) -> None:
        sku = self.rng.choice(self.target.skus)
        try:
            response = await self.client.post(
                f"{self.target.url}/orders",
                json=order_body(sku, TOKENS[placement.kind]),
                headers=self.target.headers(),
            )
        except httpx.HTTPError as exc:
            placement.error = type(exc).__name__
        else:
            if response.status_code == 201:
                placement.order_id = str(response.json()["id"])
                placement.placed_wall = time.time()
            else:
                placement.error = error_kind(response)
        finally:
            placement.latency_s = time.monotonic() - placement.due
            self.counters.in_flight -= 1
        if placement.error is not None:
            self.counters.errors[placement.error] += 1
            return
        self.counters.placed += 1
        if self.on_placed is not None:
            self.on_placed(placement)


class SettlementWatcher:
    """Live settled count: newest-first pages of paid / payment_failed orders of the tenant.

    Approximate by design (the exact figures come from the events at the end): it looks back
    only to the oldest pending order and at most ``max_pages`` pages per status and poll.
    """

    def __init__(self, client: httpx.AsyncClient, target: Target, *, max_pages: int = 5) -> None:
        self.client = client
        self.target = target
        self.max_pages = max_pages
        self.pending: dict[str, float] = {}  # order id -> time.time() it was placed
        self.settled: Counter[str] = Counter()

    def track(self, placement: Placement) -> None:
        if placement.order_id is not None and placement.placed_wall is not None:
            self.pending[placement.order_id] = placement.placed_wall

    async def poll(self) -> None:
        if not self.pending:
            return
        horizon = min(self.pending.values()) - 1.0  # client and server share the machine clock
        for status in SETTLED_TYPES.values():
            cursor: str | None = None
            for _ in range(self.max_pages):
                params: dict[str, Any] = {"status": status, "limit": PAGE_LIMIT}
                if cursor:
                    params["cursor"] = cursor
                response = await self.client.get(
                    f"{self.target.url}/orders", params=params, headers=self.target.headers()
                )
                response.raise_for_status()
                page = response.json()
                for item in page["items"]:
                    if self.pending.pop(item["id"], None) is not None:
                        self.settled[status] += 1
                cursor = page.get("next_cursor")
                oldest = page["items"][-1]["created_at"] if page["items"] else None
                if not cursor or oldest is None or _epoch(oldest) < horizon:
                    break

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            # A live figure only: the final reconciliation reads every order's events.
            with contextlib.suppress(httpx.HTTPError):
                await self.poll()
            await asyncio.sleep(interval_s)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def pending_payment_left(client: httpx.AsyncClient, target: Target) -> bool:
    """True while any order of the tenant is still ``pending_payment`` (one cheap request)."""
    response = await client.get(
        f"{target.url}/orders",
        params={"status": "pending_payment", "limit": 1},
        headers=target.headers(),
    )
    response.raise_for_status()
    return bool(response.json()["items"])


async def wait_settled(
    client: httpx.AsyncClient, target: Target, deadline: float, interval_s: float = 0.25
) -> bool:
    """Wait until no order is ``pending_payment`` or ``deadline`` (monotonic) passes."""
    while await pending_payment_left(client, target):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)
    return True


async def fetch_outcomes(
    client: httpx.AsyncClient, target: Target, order_ids: Iterable[str], *, concurrency: int = 16
) -> dict[str, Outcome]:
    """Each order's outcome from ``GET /orders/{id}/events`` (``concurrency`` at a time)."""
    gate = asyncio.Semaphore(concurrency)
    outcomes: dict[str, Outcome] = {}

    # A kept-alive connection the server dropped under overload fails once on reuse; reading
    # outcomes after the fact must not lose the step's figures to that.
    @retry(
        retry=retry_if_exception_type(httpx.TransportError),
        stop=stop_after_attempt(4),
        wait=wait_exponential_jitter(initial=0.2, max=2),
        reraise=True,
    )
    async def one(order_id: str) -> None:
        async with gate:
            response = await client.get(
                f"{target.url}/orders/{order_id}/events", headers=target.headers()
            )
        response.raise_for_status()
        outcomes[order_id] = outcome_from_events(response.json()["items"])

    await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return outcomes


def http_client(concurrency: int, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """One client, one pool: keep-alive connections sized for the in-flight cap (+ pollers)."""
    limits = httpx.Limits(
        max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
    )
    return httpx.AsyncClient(limits=limits, timeout=timeout_s)


# -- the `waybill load` command ------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    rate_per_s: float
    duration_s: float
    mix: dict[str, float]
    concurrency: int
    drain_s: float
    sku_count: int


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


def orders_url(settings: WaybillSettings) -> str | None:
    """The orders URL recorded in the running stack's ``up.json``, if any."""
    record = running_stack(StateDir(settings.state_dir))
    process = record.processes.get("orders") if record else None
    return process.url if process else None


class RateWindow:
    """Per-second rates over the last ``span_s`` seconds of (time, count) snapshots."""

    def __init__(self, span_s: float = 2.0) -> None:
        self.span_s = span_s
        self.snapshots: deque[tuple[float, int, int]] = deque()

    def rates(self, now: float, placed: int, settled: int) -> tuple[float, float]:
        self.snapshots.append((now, placed, settled))
        while len(self.snapshots) > 2 and now - self.snapshots[1][0] >= self.span_s:
            self.snapshots.popleft()
        then, placed_then, settled_then = self.snapshots[0]
        span = now - then
        if span <= 0:
            return 0.0, 0.0
        return (placed - placed_then) / span, (settled - settled_then) / span


def _status_line(
    generator: LoadGenerator, watcher: SettlementWatcher, window: RateWindow, elapsed: float
) -> str:
    c = generator.counters
    settled = sum(watcher.settled.values())
    placed_rate, settled_rate = window.rates(elapsed, c.placed, settled)
    errors = sum(c.errors.values())
    return (
        f"{elapsed:6.1f}s  placed {c.placed:,} ({placed_rate:,.1f}/s)  "
        f"settled {settled:,} ({settled_rate:,.1f}/s)  in flight {c.in_flight}  "
        f"errors {errors:,}" + (f" ({c.errors[DROPPED]:,} dropped)" if c.errors[DROPPED] else "")
    )


async def _run(creds: Credentials, options: LoadOptions, console: Console) -> dict[str, Any]:
    skus = sku_names(options.sku_count)
    target = Target(creds.url, creds.service_key, skus)
    async with http_client(options.concurrency) as client:
        if creds.admin_key is not None:
            await stock_skus(client, creds.url, creds.admin_key, skus)
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
                live.update(Text(_status_line(generator, watcher, window, elapsed)))
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
    return summarise(generator.placements, outcomes, options, tenant_id=creds.tenant_id)


def summarise(
    placements: Sequence[Placement],
    outcomes: Mapping[str, Outcome],
    options: LoadOptions,
    *,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """Counts, errors by kind and latencies, per payment kind and in total."""
    errors = Counter(p.error for p in placements if p.error is not None)
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in [*options.mix, "all"]:
        mine = [p for p in placements if kind in ("all", p.kind)]
        ends = [outcomes[p.order_id] for p in mine if p.order_id and p.order_id in outcomes]
        by_kind[kind] = {
            "offered": len(mine),
            "placed": sum(p.order_id is not None for p in mine),
            "paid": sum(o.status == "paid" for o in ends),
            "payment_failed": sum(o.status == "payment_failed" for o in ends),
            "unsettled": sum(o.status == "unsettled" for o in ends),
            "place_to_settled": vars(
                Latency.of(o.latency_s for o in ends if o.latency_s is not None)
            ),
        }
    placing = [p.latency_s for p in placements if p.order_id is not None and p.latency_s]
    return {
        "tenant_id": tenant_id,
        "offered_per_s": options.rate_per_s,
        "duration_s": options.duration_s,
        "mix": options.mix,
        "concurrency": options.concurrency,
        "errors": dict(errors),
        "placement": vars(Latency.of(placing)),
        "kinds": by_kind,
    }


def print_summary(console: Console, result: Mapping[str, Any]) -> None:
    table = RichTable(
        title=f"waybill load: {result['offered_per_s']:g} orders/s offered for "
        f"{result['duration_s']:g} s"
    )
    for column in ("payment", "offered", "placed", "paid", "failed", "unsettled"):
        table.add_column(column, justify="left" if column == "payment" else "right")
    for column in ("settle p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for kind, row in result["kinds"].items():
        if kind == "all":
            table.add_section()
        lat = row["place_to_settled"]
        table.add_row(
            TOKENS.get(kind, kind),
            *(f"{row[k]:,}" for k in ("offered", "placed", "paid", "payment_failed", "unsettled")),
            *(f"{lat[k]:,.1f}" if lat["count"] else "-" for k in ("p50_ms", "p95_ms", "p99_ms")),
        )
    console.print(table)
    placement = result["placement"]
    console.print(
        f"placement latency (from the due time): p50 {placement['p50_ms']:,.1f} ms, "
        f"p95 {placement['p95_ms']:,.1f} ms, p99 {placement['p99_ms']:,.1f} ms"
    )
    errors = result["errors"]
    console.print(
        "errors: " + (", ".join(f"{k} {v:,}" for k, v in sorted(errors.items())) or "none")
    )


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
    result = asyncio.run(_run(creds, options, console))
    print_summary(console, result)
    return result
