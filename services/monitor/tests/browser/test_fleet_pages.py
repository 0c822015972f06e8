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
from datetime import datetime
from typing import Any

import httpx
import pytest
from tests.monitor_stack import start_linked_monitor
from tests.notifier_stack import Receiver, create_endpoint, deliveries_of
from tests.ui_support import CHROMIUM, LAPTOP, NEEDS_CHROMIUM, PHONE, log_in, screenshot

from waybill.common import topics
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.envelope import EventEnvelope
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish
from waybill.devstack.testing import Infra, ServiceProcess, Tenant

pytestmark = [pytest.mark.infra, NEEDS_CHROMIUM]
ARTIFACTS = "monitor"

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, expect


def key_of(client: Any) -> str:
    return str(client.headers["authorization"]).removeprefix("Bearer ")


def cancelled(tenant_id: str) -> EventEnvelope:
    order_id = f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason="customer asked")
    return envelope(event, tenant_id=tenant_id, subject=order_id, sequence=2)


async def stable_overview(client: httpx.AsyncClient, page: Page, path: str) -> dict[str, Any]:
    """``path`` loaded between two equal answers of ``/api/overview`` (the fleet's counters
    stood still meanwhile): the figures the page was rendered with."""

    def fleet_figures(figures: dict[str, Any]) -> Any:
        return figures["idempotency"], figures["integrations"]

    async def attempt() -> tuple[dict[str, Any], bool]:
        before = (await client.get("/api/overview")).json()
        await page.goto(path)
        after = (await client.get("/api/overview")).json()
        return after, fleet_figures(before) == fleet_figures(after)

    figures, _ = await eventually(attempt, until=lambda found: found[1], what=f"{path} settled")
    return figures


async def rows_shown(page: Page, selector: str, key: str) -> dict[str, dict[str, str]]:
    return await page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"{selector} tr[data-{key}]",
        f"""rows => Object.fromEntries(rows.map(r => [r.dataset.{key}, Object.fromEntries(
             [...r.querySelectorAll('[data-field]')].map(c => [c.dataset.field,
               c.dataset.value !== undefined ? 'value:' + c.dataset.value : c.textContent.trim()])
           )]))""",
    )


def expected_cell(value: Any, field: str) -> str:
    if field in ("duplicate_rate", "error_rate") or field.endswith("_ms"):
        return "value:" + ("null" if value is None else str(value))
    if field == "last_error":
        return value or "—"
    if field == "last_error_at":
        return "—" if value is None else value  # replaced below by the time shown
    return str(value)


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
        await tab.get_by_role("link", name="Idempotency").click()
        await expect(tab.get_by_role("heading", name="Idempotency")).to_be_visible()
        figures = await stable_overview(api, tab, "/ui/idempotency")
        shown = await rows_shown(tab, "#idempotency", "group")
        groups = {f"{g['service']}/{g['consumer_group']}": g for g in figures["idempotency"]}
        assert set(shown) == set(groups)
        for name, cells in shown.items():
            assert cells == {f: expected_cell(groups[name][f], f) for f in cells}, name
        assert groups["notifier/notifier"]["duplicates"] >= 1
        assert shown["notifier/notifier"]["duplicate_rate"] != "value:0.0"
        await expect(tab.locator("canvas#chart-duplicates")).to_be_visible()
        for stopped in ("payments", "shipping"):
            await expect(tab.locator(f'[data-unanswered="{stopped}"]')).to_be_visible()
        await screenshot(tab, ARTIFACTS, "idempotency")

        await tab.get_by_role("link", name="Third-party calls").click()
        await expect(tab.get_by_role("heading", name="Third-party calls")).to_be_visible()
        figures = await stable_overview(api, tab, "/ui/integrations")
        shown = await rows_shown(tab, "#integrations", "integration")
        calls = {f"{c['service']}/{c['integration']}": c for c in figures["integrations"]}
        assert set(shown) == set(calls)
        for name, cells in shown.items():
            expected = {f: expected_cell(calls[name][f], f) for f in cells}
            at = calls[name]["last_error_at"]
            if at is not None:
                expected["last_error_at"] = datetime.fromisoformat(at).strftime(
                    "%Y-%m-%d %H:%M:%S UTC"
                )
            assert cells == expected, name
        webhooks = calls["notifier/webhooks"]
        assert webhooks["errors"] >= 3 and webhooks["last_error"] == "http_5xx"
        await expect(tab.locator("canvas#chart-integrations")).to_be_visible()
        await screenshot(tab, ARTIFACTS, "integrations")
        await tab.set_viewport_size(PHONE)
        await screenshot(tab, ARTIFACTS, "integrations-phone")
    finally:
        await api.aclose()
        await context.close()
