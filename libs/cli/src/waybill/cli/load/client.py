"""Placing orders over HTTP: the target, order bodies, and the open-loop generator.

Requests in flight are capped; an arrival that finds the cap full is not sent and counts as
``dropped``. Placement latency is measured from the arrival's *due* time, so time spent
waiting for the event loop is part of it. One pooled client serves the generator and pollers.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from waybill.cli.load.schedule import DROPPED, TOKENS, arrival_offsets, assign_kinds

SKU_UNITS = 1_000_000_000  # the API's maximum stock level: the load never runs out


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


def http_client(concurrency: int, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """One client, one pool: keep-alive connections sized for the in-flight cap (+ pollers)."""
    limits = httpx.Limits(
        max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
    )
    return httpx.AsyncClient(limits=limits, timeout=timeout_s)


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
