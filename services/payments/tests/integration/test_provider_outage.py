"""A provider that answers only 500s: the breaker opens, the payment waits (never failed),
and once the provider is back it is charged exactly once."""

from __future__ import annotations

import re

from waybill.devstack.testing import eventually

from .conftest import Shop

BREAKER = re.compile(
    r'^waybill_circuit_breaker_state\{[^}]*dependency="sandbox"[^}]*\} (\S+)$', re.M
)


async def test_payments_wait_out_a_provider_outage_and_settle_once_it_returns(shop: Shop, saga):
    async def breaker_state() -> float | None:
        metrics = (await shop.sandbox.get(f"{saga.payments.url}/metrics")).text
        found = BREAKER.search(metrics)
        return float(found.group(1)) if found else None

    await shop.faults(error_rate=1)
    order = await shop.place("pm_card_ok")

    await eventually(lambda: _is(breaker_state, 2.0), what="the provider breaker to open")
    waiting = await shop.payment_of(order["id"])
    assert waiting is not None
    assert waiting["status"] == "pending"  # an outage never fails a payment

    await shop.sandbox.post("/admin/faults/reset")
    payment = await shop.settled(order["id"], "captured", timeout_s=20)

    assert len((await shop.ledger(order["id"]))["charges"]) == 1
    assert payment["failure_code"] is None
    await eventually(lambda: _is(breaker_state, 0.0), what="the provider breaker to close")


async def _is(probe, value: float) -> bool:
    return await probe() == value
