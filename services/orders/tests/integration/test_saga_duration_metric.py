"""Saga latency (``waybill.orders.saga_metrics``): a real order placed over HTTP and paid by a
payment outcome from Kafka is observed once, as step ``paid``, at ``GET /metrics``; the same
outcome redelivered observes nothing more."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests import orders_feed as feed
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.devstack.testing import Infra, ServiceProcess

SAGA = "waybill_order_saga_duration_seconds"


def paid_step(orders_url: str) -> tuple[float, float]:
    """(count, sum) of the histogram's ``step="paid"`` series now (0, 0 before the first)."""
    text = httpx.get(f"{orders_url}/metrics", timeout=10).text
    found = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name != SAGA:
            continue
        for sample in family.samples:
            if sample.labels.get("step") == "paid" and sample.name in (
                f"{SAGA}_count",
                f"{SAGA}_sum",
            ):
                assert sample.labels["service"] == "orders"
                found[sample.name.removeprefix(f"{SAGA}_")] = sample.value
    return found["count"], found["sum"]


async def test_a_paid_order_is_observed_once_from_its_placement(
    tenant: Tenant, infra: Infra, orders_service: ServiceProcess
):
    count_before, sum_before = paid_step(orders_service.url)
    started = time.monotonic()
    await tenant.stock("SAGA-LATENCY", 5)
    order = (await tenant.service.post("/orders", json=order_body("SAGA-LATENCY"))).json()
    captured = feed.captured_for(order)
    envelope = feed.envelope(tenant, captured, subject=captured.payment_id)

    await feed.publish(infra, topics.PAYMENTS_EVENTS, envelope, envelope)  # and a redelivery
    await feed.wait_status(tenant, order["id"], "paid")
    await feed.wait_consumed(infra, topics.PAYMENTS_EVENTS, order["id"])
    elapsed = time.monotonic() - started

    count_after, sum_after = paid_step(orders_service.url)
    assert count_after - count_before == 1
    # From its placement to its payment: within the time this test took, never negative.
    assert 0 <= sum_after - sum_before <= elapsed
