"""How the placed orders settle: a live approximate count, then each order's exact fate.

Live: newest-first pages of paid / failed orders (for the progress line). Exact, at the end:
each order's own events (``order.placed`` -> ``order.paid`` / ``order.payment_failed``, both
``recorded_at`` set by the orders service, one clock). ``waybill bench saga`` reuses both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from waybill.cli.load.client import Placement, Target

SETTLED_TYPES = {"order.paid": "paid", "order.payment_failed": "payment_failed"}


PLACED_TYPE = "order.placed"


PAGE_LIMIT = 200  # the API's maximum page size


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
