"""``waybill load --agents N``: delivery agents that take every offer, ship and deliver it, so a
load runs each paid order on to ``delivered`` (place -> paid -> shipment -> delivered).

Each agent is a real agent of the load's tenant (``POST /agents`` on shipping, its own key)
serving the postal code the load's orders ship to, with room for every shipment the run makes.
It polls its open offers, as an agent's app would (shipping has no push channel to agents);
racing agents are the point: a 409 ``ASSIGNMENT_CONFLICT`` / ``_ALREADY_ACCEPTED`` is counted,
not an error. Codes are not required for the load's tenant (the default), so ``deliver`` needs
no code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

LOAD_POSTAL_CODE = "10115"  # where client.order_body ships
POLL_S = 0.25
RACE_CODES = {"ASSIGNMENT_CONFLICT", "ASSIGNMENT_ALREADY_ACCEPTED", "OFFER_EXPIRED"}


@dataclass
class AgentFleet:
    client: httpx.AsyncClient
    shipping_url: str
    keys: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    delivered: set[str] = field(default_factory=set)  # shipment ids
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _delivery: asyncio.Event = field(default_factory=asyncio.Event)  # set on each delivery

    @classmethod
    async def enlist(
        cls, client: httpx.AsyncClient, shipping_url: str, admin_key: str, count: int
    ) -> AgentFleet:
        fleet = cls(client, shipping_url)
        headers = {"Authorization": f"Bearer {admin_key}"}
        for n in range(count):
            response = await client.post(
                f"{shipping_url}/agents",
                json={
                    "name": f"load agent {n + 1}",
                    "service_zip_codes": [LOAD_POSTAL_CODE],
                    "capacity": 1000,
                },
                headers=headers,
            )
            response.raise_for_status()
            fleet.keys.append(response.json()["api_key"])
        return fleet

    async def run(self) -> None:
        await asyncio.gather(*(self._agent(key) for key in self.keys))

    async def wait_delivered(self, count: int, *, timeout_s: float) -> bool:
        """Until the fleet delivered ``count`` shipments (False: the time ran out first)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while len(self.delivered) < count:
                    self._delivery.clear()
                    await self._delivery.wait()
                return True
        return False

    def stop(self) -> None:
        self._stopping.set()

    async def _agent(self, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        while not self._stopping.is_set():
            try:
                offers = await self.client.get(
                    f"{self.shipping_url}/assignments",
                    params={"status": "offered", "limit": 200},
                    headers=headers,
                )
                offers.raise_for_status()
                for offer in offers.json()["items"]:
                    await self._take(offer, headers)
            except httpx.HTTPError as exc:
                self.counts[f"error_{type(exc).__name__}"] += 1
            with contextlib.suppress(TimeoutError):  # the poll interval, or stop() ends it
                await asyncio.wait_for(self._stopping.wait(), timeout=POLL_S)

    async def _take(self, offer: dict[str, Any], headers: dict[str, str]) -> None:
        accepted = await self.client.post(
            f"{self.shipping_url}/assignments/{offer['id']}/accept", headers=headers
        )
        if accepted.status_code == 409 and accepted.json().get("code") in RACE_CODES:
            self.counts["lost_race"] += 1
            return
        accepted.raise_for_status()
        self.counts["accepted"] += 1
        shipment = offer["shipment_id"]
        for action in ("ship", "deliver"):
            response = await self.client.post(
                f"{self.shipping_url}/shipments/{shipment}/{action}", headers=headers
            )
            response.raise_for_status()
        self.delivered.add(shipment)
        self.counts["delivered"] += 1
        self._delivery.set()

    def summary(self) -> dict[str, Any]:
        return {"agents": len(self.keys), **dict(sorted(self.counts.items()))}
