"""The monitor's fleet-wide views read from the services' /metrics, with real processes:
third-party calls (payments' provider, the notifier's SMS provider, SMTP relay and webhook
receivers), failing ones included, and duplicates skipped per consumer group for a record
produced twice. Each figure is checked on the service's own /metrics and in the monitor's
``/api/overview`` (a monitor linked to the real payments and notifier: ``fleet_monitor``).

Payments runs for real here (``saga``): after these tests a retried dead letter of its group is
applied by it, which the monitor's own tests (services/monitor/tests) do not expect; they run
before this root folder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.messaging_stack import CustomerOrder, notifications_of, publish_events
from tests.monitor_stack import start_linked_monitor
from tests.notifier_stack import Receiver, create_endpoint, deliveries_of
from tests.saga_stack import OrdersTenant, Saga
from tests.saga_support import place_orders, reset_faults, set_faults, wait_orders

from waybill.common import topics
from waybill.common.contracts.orders import OrderCancelled
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish
from waybill.devstack.testing import Infra, ServiceProcess, Tenant

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def fleet_monitor(
    infra: Infra,
    monitor_service: ServiceProcess,
    orders_service: ServiceProcess,
    saga: Saga,
    notifier_service: ServiceProcess,
) -> Iterator[ServiceProcess]:
    """A monitor linked to the real orders, payments and notifier."""
    service = start_linked_monitor(
        infra,
        orders=orders_service.url,
        payments=saga.payments.url,
        notifier=notifier_service.url,
    )
    yield service
    service.stop()


@pytest.fixture
async def fleet(
    fleet_monitor: ServiceProcess, operator: Tenant
) -> AsyncIterator[httpx.AsyncClient]:
    """The operator's admin key on the monitor linked to payments and the notifier."""
    async with httpx.AsyncClient(
        base_url=fleet_monitor.url, headers=operator.admin.headers, timeout=30
    ) as client:
        yield client


async def samples(url: str, name: str) -> list[Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


async def calls_of(url: str, service: str, integration: str) -> dict[str, int]:
    """The service's own ``waybill_integration_calls_total`` of ``integration`` by outcome."""
    found = await samples(url, "waybill_integration_calls_total")
    return {
        s.labels["outcome"]: int(s.value)
        for s in found
        if s.labels["service"] == service and s.labels["integration"] == integration
    }


async def last_errors(url: str, service: str, integration: str) -> list[str]:
    found = await samples(url, "waybill_integration_last_error_info")
    return [
        s.labels["error_class"]
        for s in found
        if s.labels["service"] == service and s.labels["integration"] == integration
    ]


async def overview(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/api/overview")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def row_of(figures: dict[str, Any], service: str, integration: str) -> dict[str, Any] | None:
    rows = [
        r
        for r in figures["integrations"]
        if r["service"] == service and r["integration"] == integration
    ]
    return rows[0] if rows else None


def more(now: dict[str, int], before: dict[str, int], outcome: str) -> bool:
    return now.get(outcome, 0) > before.get(outcome, 0)


async def shown_as_on_metrics(
    fleet: httpx.AsyncClient, url: str, service: str, integration: str
) -> dict[str, Any]:
    """The overview's row once its calls are the service's (nothing else in flight)."""

    async def both() -> tuple[dict[str, Any] | None, dict[str, int]]:
        return row_of(await overview(fleet), service, integration), await calls_of(
            url, service, integration
        )

    row, counted = await eventually(
        both,
        until=lambda found: found[0] is not None and found[0]["outcomes"] == found[1],
        timeout_s=30,
        what=f"{service}/{integration} in the overview as on its /metrics",
    )
    assert row is not None
    assert row["calls"] == sum(counted.values())
    assert row["errors"] == sum(n for outcome, n in counted.items() if outcome != "ok")
    assert row["error_rate"] == round(row["errors"] / row["calls"], 4)
    assert row["p50_ms"] is not None and row["p95_ms"] >= row["p50_ms"] > 0
    return row


async def test_provider_calls_failing_then_succeeding_show_on_payments_metrics_and_overview(
    saga: Saga, tenant: OrdersTenant, fleet: httpx.AsyncClient
):
    url = saga.payments.url
    before = await calls_of(url, "payments", "payment_provider")
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    await tenant.stock(sku, 5)
    await set_faults(saga, error_rate=1.0)  # every provider call answers 500
    try:
        (order_id,) = await place_orders(tenant, 1, sku=sku)
        await eventually(
            lambda: calls_of(url, "payments", "payment_provider"),
            until=lambda now: more(now, before, "http_5xx"),
            timeout_s=30,
            what="a 500 from the provider counted",
        )
        assert await last_errors(url, "payments", "payment_provider") == ["http_5xx"]
    finally:
        await reset_faults(saga)
    seen = await wait_orders(tenant, [order_id], statuses={"paid"}, timeout_s=60)
    assert seen == {order_id: "paid"}
    (declined,) = await place_orders(tenant, 1, sku=sku, payment_method="pm_card_declined")
    seen = await wait_orders(tenant, [declined], statuses={"payment_failed"}, timeout_s=60)
    assert seen == {declined: "payment_failed"}
    now = await calls_of(url, "payments", "payment_provider")
    assert now["ok"] >= before.get("ok", 0) + 2  # the charge at last, and the decline (a 402)
    assert not more(now, before, "http_4xx")  # a decline is the provider answering

    row = await shown_as_on_metrics(fleet, url, "payments", "payment_provider")
    assert row["last_error"] == "http_5xx" and row["last_error_at"] is not None


async def test_sms_and_smtp_failures_then_sends_show_on_notifier_metrics_and_overview(
    infra: Infra,
    backend: Tenant,
    outside: httpx.AsyncClient,
    notifier_service: ServiceProcess,
    fleet: httpx.AsyncClient,
):
    url = notifier_service.url
    sms_before = await calls_of(url, "notifier", "sms_provider")
    smtp_before = await calls_of(url, "notifier", "smtp")
    # Counted faults: the first SMS and the first email are refused, their retries succeed,
    # whatever the machine's speed (a rate had to be turned off before the retries ran out).
    await outside.put("/admin/faults", json={"sms_fail_next": 1, "smtp_reject_next": 1})
    order = CustomerOrder(backend.id)
    await publish_events(infra, order.placed(), order.in_transit(1, "424242"))  # email, SMS

    async def both() -> tuple[dict[str, int], dict[str, int]]:
        return await calls_of(url, "notifier", "sms_provider"), await calls_of(
            url, "notifier", "smtp"
        )

    await eventually(
        both,
        until=lambda now: (
            more(now[0], sms_before, "http_5xx") and more(now[1], smtp_before, "smtp_4xx")
        ),
        timeout_s=30,
        what="a refused SMS (500) and a refused email (451) counted",
    )
    assert await last_errors(url, "notifier", "sms_provider") == ["http_5xx"]
    assert await last_errors(url, "notifier", "smtp") == ["smtp_4xx"]
    await eventually(
        lambda: notifications_of(backend.service, order.order_id),
        until=lambda items: len(items) == 3 and all(n["status"] == "sent" for n in items),
        timeout_s=60,
        what="the two emails and the SMS sent after the faults",
    )
    sms_now, smtp_now = await both()
    assert more(sms_now, sms_before, "ok") and more(smtp_now, smtp_before, "ok")

    sms = await shown_as_on_metrics(fleet, url, "notifier", "sms_provider")
    smtp = await shown_as_on_metrics(fleet, url, "notifier", "smtp")
    assert (sms["last_error"], smtp["last_error"]) == ("http_5xx", "smtp_4xx")


def cancelled(tenant_id: str, reason: str = "#3") -> Any:
    order_id = f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason=reason)
    return envelope(event, tenant_id=tenant_id, subject=order_id, sequence=3)


async def test_webhook_attempts_are_the_webhooks_integration_with_their_error_class(
    infra: Infra,
    backend: Tenant,
    receiver: Receiver,
    notifier_service: ServiceProcess,
    fleet: httpx.AsyncClient,
):
    url = notifier_service.url
    before = await calls_of(url, "notifier", "webhooks")
    failing = await create_endpoint(backend, receiver.url(f"/{uuid.uuid4().hex}/fail"))
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled(backend.id))
    (message,) = await eventually(
        lambda: deliveries_of(backend, failing),
        until=lambda items: len(items) == 1 and len(items[0]["attempts"]) >= 2,
        timeout_s=30,
        what="two attempts answered 500",
    )
    now = await calls_of(url, "notifier", "webhooks")
    # Every attempt the delivery log shows is a call (others of the session may add more).
    assert now.get("http_5xx", 0) - before.get("http_5xx", 0) >= len(message["attempts"])
    assert await last_errors(url, "notifier", "webhooks") == ["http_5xx"]
    await backend.service.delete(f"/webhook-endpoints/{failing['id']}")

    ok = await create_endpoint(backend, receiver.url(f"/{uuid.uuid4().hex}/ok"))
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled(backend.id))
    await eventually(
        lambda: deliveries_of(backend, ok),
        until=lambda items: len(items) == 1 and items[0]["status"] == "succeeded",
        timeout_s=30,
        what="a delivery answered 200",
    )
    assert more(await calls_of(url, "notifier", "webhooks"), before, "ok")
    row = await eventually(
        lambda: overview(fleet),
        until=lambda figures: (
            (row_of(figures, "notifier", "webhooks") or {}).get("outcomes", {}).get("ok", 0)
            > before.get("ok", 0)
        ),
        timeout_s=30,
        what="the webhooks row in the overview",
    )
    webhooks = row_of(row, "notifier", "webhooks")
    assert webhooks is not None and webhooks["last_error"] == "http_5xx"


def group_of(figures: dict[str, Any], service: str, group: str) -> dict[str, Any]:
    rows = [
        r
        for r in figures["idempotency"]
        if r["service"] == service and r["consumer_group"] == group
    ]
    return rows[0] if rows else {"applied": 0, "duplicates": 0}


async def test_a_record_produced_twice_is_one_duplicate_of_each_consumer_group(
    infra: Infra,
    operator: Tenant,
    fleet: httpx.AsyncClient,
    notifier_service: ServiceProcess,
):
    """The notifier's group (a kit consumer, read by the linked monitor) and the monitor's own
    (its recorder, read in process by the session monitor, which runs it) each skip one."""
    before_notifier = group_of(await overview(fleet), "notifier", "notifier")
    before_monitor = group_of(await overview(operator.admin), "monitor", "monitor")
    record = cancelled(operator.id, "twice")
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, record)
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, record)  # the same event id

    def one_more(before: dict[str, Any]) -> Any:
        return lambda row: row["duplicates"] == before["duplicates"] + 1

    notifier = await eventually(
        lambda: overview(fleet),
        until=lambda f: one_more(before_notifier)(group_of(f, "notifier", "notifier")),
        timeout_s=30,
        what="one duplicate more for the notifier's group",
    )
    monitor = await eventually(
        lambda: overview(operator.admin),
        until=lambda f: one_more(before_monitor)(group_of(f, "monitor", "monitor")),
        timeout_s=30,
        what="one duplicate more for the monitor's own group",
    )
    for row, before in (
        (group_of(notifier, "notifier", "notifier"), before_notifier),
        (group_of(monitor, "monitor", "monitor"), before_monitor),
    ):
        assert row["applied"] >= before["applied"] + 1
        seen = row["applied"] + row["duplicates"]
        assert row["duplicate_rate"] == round(row["duplicates"] / seen, 4)
        assert row["check_p95_ms"] >= row["check_p50_ms"] > 0
    # The linked monitor runs no consumer: no group of its own to show.
    assert group_of(notifier, "monitor", "monitor") == {"applied": 0, "duplicates": 0}
