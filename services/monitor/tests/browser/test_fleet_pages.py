"""The monitor's fleet-wide pages in a real browser (Debian's chromium under Playwright):
duplicates skipped per consumer group (``/ui/idempotency``) and third-party calls
(``/ui/integrations``) show ``/api/overview``'s figures, read from the services' ``/metrics``
by a monitor linked to the real orders and notifier.

Screenshots go to ``test-artifacts/monitor/`` (gitignored); their paths are printed
(``pytest -s``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from tests.monitor_stack import start_linked_monitor
from tests.notifier_stack import Receiver, create_endpoint, deliveries_of
from tests.ui_support import (
    CHROMIUM,
    LAPTOP,
    NEEDS_CHROMIUM,
    PHONE,
    assert_fleet_pages,
    log_in,
    screenshot,
)

from waybill.common import topics
from waybill.devstack.eventually import eventually
from waybill.devstack.records import publish, wait_caught_up
from waybill.devstack.testing import Infra, ServiceProcess, Tenant

from .test_admin_ui import cancelled, key_of

pytestmark = [pytest.mark.infra, NEEDS_CHROMIUM]
ARTIFACTS = "monitor"

if CHROMIUM.exists():
    from playwright.async_api import Browser, expect


@pytest.fixture(scope="module")
def fleet_monitor(
    infra: Infra,
    monitor_service: ServiceProcess,
    orders_service: ServiceProcess,
    notifier_service: ServiceProcess,
) -> Iterator[ServiceProcess]:
    """A monitor linked to the real orders and notifier. Not to payments: with payments
    running, a dead letter retried to its group would be applied at once, and this folder's
    tests see a retry stay ``retrying``."""
    service = start_linked_monitor(infra, orders=orders_service.url, notifier=notifier_service.url)
    yield service
    service.stop()


async def test_the_idempotency_and_third_party_call_pages_show_the_apis_figures(
    infra: Infra,
    operator: Tenant,
    browser: Browser,
    fleet_monitor: ServiceProcess,
    backend: Tenant,
    receiver: Receiver,
):
    # A record twice (one duplicate for the notifier's group) and a webhook endpoint answering
    # 500 (three failed attempts, then the message fails): real figures on both pages.
    twice = cancelled(backend.id)
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, twice, twice)
    # Consumed before the endpoint exists: its one message is the next record's.
    await wait_caught_up(infra.bootstrap_servers, "notifier", topics.ORDERS_EVENTS)
    endpoint = await create_endpoint(backend, receiver.url(f"/{uuid.uuid4().hex}/fail"))
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled(backend.id))
    await eventually(
        lambda: deliveries_of(backend, endpoint),
        until=lambda items: len(items) == 1 and items[0]["status"] == "failed",
        timeout_s=60,
        what="the message failed after its attempts",
    )
    context = await browser.new_context(base_url=fleet_monitor.url, viewport=LAPTOP)
    tab = await context.new_page()
    api = httpx.AsyncClient(base_url=fleet_monitor.url, headers=operator.admin.headers)
    try:
        await log_in(tab, key_of(operator.admin))
        groups, calls = await assert_fleet_pages(tab, api)
        assert groups["notifier/notifier"]["duplicates"] >= 1
        assert groups["notifier/notifier"]["duplicate_rate"] > 0
        for stopped in ("payments", "shipping"):
            await tab.goto("/ui/idempotency")
            await expect(tab.locator(f'[data-unanswered="{stopped}"]')).to_be_visible()
        await screenshot(tab, ARTIFACTS, "idempotency")
        await tab.goto("/ui/integrations")
        webhooks = calls["notifier/webhooks"]
        assert webhooks["errors"] >= 3 and webhooks["last_error"] == "http_5xx"
        await screenshot(tab, ARTIFACTS, "integrations")
        await tab.set_viewport_size(PHONE)
        await screenshot(tab, ARTIFACTS, "integrations-phone")
    finally:
        await api.aclose()
        await context.close()
