"""The payment of an order, end to end: orders, payments and the sandbox provider as real
processes over real HTTP, on the session's real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import Shop


@pytest.mark.parametrize(
    ("payment_method", "final_status", "charges"),
    [
        ("pm_card_ok", "captured", 1),
        ("pm_card_declined", "failed", 0),
        ("pm_card_async", "captured", 1),  # settled by the provider's webhook
        ("pm_card_async_silent", "captured", 1),  # no webhook: settled by payment sync
    ],
)
async def test_each_payment_method_token_reaches_its_final_status_with_one_charge_at_most(
    shop: Shop, payment_method: str, final_status: str, charges: int
):
    order = await shop.place(payment_method)

    payment = await shop.settled(order["id"], final_status)

    assert payment["order_id"] == order["id"]
    assert payment["amount_cents"] == order["total_cents"]
    assert payment["payment_method"] == payment_method
    ledger = await shop.ledger(order["id"])
    assert len(ledger["charges"]) == charges
    if final_status == "failed":
        assert payment["failure_code"] == "card_declined"
    else:
        assert ledger["charges"][0]["idempotency_key"] == payment["id"]
        assert payment["provider_payment_id"] == ledger["charges"][0]["payment_intent"]


async def test_a_payment_is_read_by_id_in_its_tenant_only(shop: Shop, infra, saga):
    from waybill.devstack.testing import new_tenant

    order = await shop.place("pm_card_ok")
    payment = await shop.settled(order["id"], "captured")
    other = await new_tenant(infra, saga.payments.url)
    try:
        mine = await shop.payments.get(f"/payments/{payment['id']}")
        theirs = await other.service.get(f"/payments/{payment['id']}")
        listed = await other.service.get("/payments", params={"order_id": order["id"]})
    finally:
        await other.aclose()

    assert mine.status_code == 200
    assert mine.json() == payment
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "PAYMENT_NOT_FOUND"
    assert listed.json()["items"] == []
    assert (await shop.tenant.agent.get(f"{saga.payments.url}/payments")).status_code == 403


async def test_admin_refund_refunds_at_the_provider_and_only_once(shop: Shop):
    order = await shop.place("pm_card_ok")
    payment = await shop.settled(order["id"], "captured")

    forbidden = await shop.payments.post(f"/payments/{payment['id']}/refund")
    refunded = await shop.payments_admin.post(
        f"/payments/{payment['id']}/refund", json={"reason": "customer asked"}
    )
    again = await shop.payments_admin.post(f"/payments/{payment['id']}/refund")

    assert forbidden.status_code == 403
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    assert refunded.json()["refunded_cents"] == payment["amount_cents"]
    assert again.status_code == 409
    assert again.json()["code"] == "INVALID_TRANSITION"
    ledger = await shop.ledger(order["id"])
    assert [r["amount"] for r in ledger["refunds"]] == [payment["amount_cents"]]


async def test_refund_of_a_payment_that_is_not_captured_is_an_invalid_transition(shop: Shop):
    order = await shop.place("pm_card_declined")
    payment = await shop.settled(order["id"], "failed")

    response = await shop.payments_admin.post(f"/payments/{payment['id']}/refund", json={})
    unknown_field = await shop.payments_admin.post(
        f"/payments/{payment['id']}/refund", json={"amount": 1}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "INVALID_TRANSITION"
    assert unknown_field.status_code == 422
    assert (await shop.ledger(order["id"]))["refunds"] == []


async def test_an_order_cancelled_after_capture_is_refunded_automatically(shop: Shop):
    order = await shop.place("pm_card_ok")
    payment = await shop.settled(order["id"], "captured")

    cancelled = await shop.tenant.service.post(f"/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    refunded = await shop.settled(order["id"], "refunded")
    assert refunded["order_closed"] is True
    assert refunded["refunded_cents"] == payment["amount_cents"]
    ledger = await shop.ledger(order["id"])
    assert len(ledger["charges"]) == 1
    assert [r["amount"] for r in ledger["refunds"]] == [payment["amount_cents"]]
    assert ledger["refunds"][0]["idempotency_key"] == f"{payment['id']}:refund"


async def test_orders_placed_together_are_each_charged_exactly_once(shop: Shop):
    orders = await asyncio.gather(*(shop.place("pm_card_ok") for _ in range(10)))

    await asyncio.gather(*(shop.settled(o["id"], "captured") for o in orders))

    ledgers = await asyncio.gather(*(shop.ledger(o["id"]) for o in orders))
    assert [len(ledger["charges"]) for ledger in ledgers] == [1] * 10


async def test_an_order_cancelled_as_soon_as_placed_is_charged_once_and_refunded_once(
    shop: Shop,
):
    # The cancel lands before, during or after the charge (often in the same consumer batch as
    # order.placed, so the charger charges with the state it was handed, order still open):
    # whichever, the outcome is recorded against the order as it is by then.
    await shop.faults(latency_ms=400)
    order = await shop.place("pm_card_ok")
    cancelled = await shop.tenant.service.post(f"/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    refunded = await shop.settled(order["id"], "refunded")
    assert refunded["order_closed"] is True
    assert refunded["refunded_cents"] == refunded["amount_cents"]
    ledger = await shop.ledger(order["id"])
    assert len(ledger["charges"]) == 1
    assert [r["amount"] for r in ledger["refunds"]] == [refunded["amount_cents"]]
