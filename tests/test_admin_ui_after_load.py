"""The monitor's admin UI in a real browser against the whole stack (``waybill up``) after
``waybill load`` with delivery agents, and one poison event in each of two consumer groups.

An admin logs in and opens every page (overview, capacity, idempotency, third-party calls,
failure taxonomy, retry policy, dead letters): each figure it shows is the API's
(``/api/overview``), and they are the load's, not zero. The shipping group's dead letter is
fixed (its data edited on its page) and retried by clicking: it is resolved and shipping
applied it once. The
notifier's is abandoned by a bulk job from the UI, whose progress the job page shows; the CSV
export holds what the API lists. Screenshots: ``test-artifacts/monitor-stack/``.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.test_poison_per_consumer import paid, poisoned
from tests.ui_support import (
    CHROMIUM,
    LAPTOP,
    NEEDS_CHROMIUM,
    PHONE,
    assert_capacity_page,
    assert_fleet_pages,
    assert_shows,
    figures_shown,
    launched,
    leaves,
    log_in,
    screenshot,
    stable_overview,
)
from tests.up_stack import WaybillUp

from waybill.common import topics
from waybill.devstack.eventually import eventually
from waybill.devstack.records import publish

pytestmark = [pytest.mark.infra, NEEDS_CHROMIUM]
FOLDER = "monitor-stack"

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, expect


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async for chromium in launched():
        yield chromium


@pytest.fixture
async def page(browser: Browser, stack: WaybillUp) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=stack.url("monitor"), viewport=LAPTOP, accept_downloads=True
    )
    tab = await context.new_page()
    yield tab
    await context.close()


def run_load(stack: WaybillUp, service_key: str, admin_key: str, summary: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "waybill.cli.main", "load"),
            *("--rate", "5", "--duration", "3", "--mix", "ok=0.8,declined=0.2"),
            *("--agents", "2", "--drain", "60", "--skus", "4"),
            *("--key", service_key, "--admin-key", admin_key, "--json", str(summary)),
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(summary.read_text())  # type: ignore[no-any-return]


async def test_after_load_every_page_shows_the_apis_figures_and_dead_letters_are_handled(
    stack: WaybillUp, page: Page, tmp_path: Path
) -> None:
    tenant = f"t_{uuid.uuid4().hex[:12]}"
    admin_key = await stack.new_key(tenant, "admin")
    outcome = run_load(
        stack, await stack.new_key(tenant, "service"), admin_key, tmp_path / "l.json"
    )
    paid_orders = outcome["kinds"]["all"]["paid"]
    assert paid_orders > 0 and outcome["delivery"]["delivered"] == paid_orders

    bootstrap = stack.record().bootstrap_servers
    ship_order, note_order = f"ord_{uuid.uuid4().hex}", f"ord_{uuid.uuid4().hex}"
    to_shipping = poisoned(paid(ship_order), tenant, ship_order, 2, "shipping")
    to_notifier = poisoned(paid(note_order), tenant, note_order, 2, "notifier")
    await publish(bootstrap, topics.ORDERS_EVENTS, to_shipping, to_notifier)

    api = httpx.AsyncClient(
        base_url=stack.url("monitor"), headers={"Authorization": f"Bearer {admin_key}"}, timeout=15
    )
    shipping = httpx.AsyncClient(
        base_url=stack.url("shipping"), headers={"Authorization": f"Bearer {admin_key}"}, timeout=15
    )
    try:

        async def overview() -> dict[str, Any]:
            return (await api.get("/api/overview")).json()  # type: ignore[no-any-return]

        def settled(figures: dict[str, Any]) -> bool:
            return (
                figures["orders"]["by_status"].get("delivered", 0) >= paid_orders
                and figures["dead_letters"]["by_status"].get("pending") == 2
            )

        figures = await eventually(overview, until=settled, timeout_s=60, what="the load's figures")
        assert figures["shipments"]["by_status"]["delivered"] == paid_orders
        assert figures["payments"]["by_status"]["captured"] >= paid_orders
        assert figures["notifications"]["by_channel"], figures["notifications"]

        counted = ("orders", "payments", "revenue", "dead_letters", "shipments", "notifications")
        await log_in(page, admin_key)
        # The poison events' effects may still be arriving (a shipment, an email): the page is
        # compared with the figures it was rendered with.
        figures = await stable_overview(
            api, page, "/", part=lambda found: {k: found[k] for k in counted}
        )
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        await expect(page.locator("canvas#chart-orders")).to_be_visible()
        shown = await figures_shown(page)
        assert_shows(shown, figures)
        assert set(shown) >= leaves({k: figures[k] for k in counted})
        assert shown["orders.by_status.delivered"][1] == str(paid_orders) != "0"
        await expect(page.locator("[data-health]")).to_have_text("healthy")
        await screenshot(page, FOLDER, "overview")
        await page.set_viewport_size(PHONE)
        await screenshot(page, FOLDER, "overview-phone")
        await page.set_viewport_size(LAPTOP)

        await page.get_by_role("link", name="Capacity").click()
        capacity = (await overview())["capacity"]
        assert len(capacity["agents"]) == 2 and capacity["postal_codes"], capacity
        await assert_capacity_page(page, capacity)
        await screenshot(page, FOLDER, "capacity")

        groups, calls = await assert_fleet_pages(page, api)
        # The load's records went through every group, and its charges to the provider.
        for name in ("payments/payments", "shipping/shipping", "notifier/notifier"):
            assert groups[name]["applied"] > 0, groups
        assert calls["payments/payment_provider"]["calls"] >= paid_orders
        await screenshot(page, FOLDER, "integrations")
        await page.goto("/ui/idempotency")
        await screenshot(page, FOLDER, "idempotency")

        await page.get_by_role("link", name="Failure taxonomy").click()
        await expect(page.locator('[data-failure-count="business_logic_violation"]')).to_have_text(
            "2"
        )
        await screenshot(page, FOLDER, "taxonomy")

        await page.get_by_role("link", name="Retry policy").click()
        await expect(page.get_by_role("heading", name="Retry policy")).to_be_visible()
        await screenshot(page, FOLDER, "retry-policy")

        # The shipping group's dead letter: fixed on its page, retried by clicking.
        await page.get_by_role("link", name="Dead letters").click()
        listed = (await api.get("/api/dlq", params={"consumer_group": "shipping"})).json()
        (letter,) = listed["items"]
        assert letter["failure_type"] == "business_logic_violation"
        row = page.locator(f'tr[data-letter="{letter["id"]}"]')
        await expect(row.locator("[data-status]")).to_have_text("pending")
        await screenshot(page, FOLDER, "dead-letters")
        await row.get_by_role("link").first.click()
        await expect(page.locator("#letter [data-failure-type]")).to_contain_text(
            "business_logic_violation"
        )
        edit = page.locator("#edit-data")
        data = json.loads(await edit.input_value())
        assert data.pop("__poison__") == "shipping"
        await edit.fill(json.dumps(data, indent=2))
        await screenshot(page, FOLDER, "dead-letter-edit")
        await page.get_by_role("button", name="Retry with these data").click()

        async def status_shown() -> str:
            await page.reload()
            return (await page.locator("#letter [data-status]").inner_text()).strip()

        await eventually(status_shown, until=lambda s: s == "resolved", what="resolved, shown")
        await expect(page.locator('#audit tr[data-action="retried"]')).to_contain_text("after")
        await screenshot(page, FOLDER, "dead-letter-resolved")
        shipments = (await shipping.get("/shipments", params={"order_id": ship_order})).json()
        assert len(shipments["items"]) == 1  # applied once

        # The notifier's: abandoned by a bulk job over a filter, with its progress shown.
        await page.goto("/ui/dead-letters?consumer_group=notifier")
        bulk = page.locator("form#bulk")
        await bulk.locator('select[name="action"]').select_option("abandon")
        await bulk.get_by_role("button").click()
        await expect(page.locator("#bulk-count")).to_have_attribute("data-count", "1")
        await screenshot(page, FOLDER, "bulk-confirm")
        await page.get_by_role("button", name="Start: abandon 1").click()
        await expect(page.locator("#job")).to_have_attribute(
            "data-status", "succeeded", timeout=30_000
        )
        await expect(page.locator('[data-job-field="succeeded"]')).to_have_text("1")
        assert await page.locator("#job-progress").get_attribute("value") == "1"
        await screenshot(page, FOLDER, "bulk-job")
        (abandoned,) = (await api.get("/api/dlq", params={"status": "abandoned"})).json()["items"]
        assert abandoned["consumer_group"] == "notifier"

        # The export holds what the API lists.
        await page.goto("/ui/dead-letters")
        async with page.expect_download() as download_info:
            await page.locator("a#export").click()
        download = await download_info.value
        saved = tmp_path / "dead-letters.csv"
        await download.save_as(saved)
        exported = list(csv.DictReader(io.StringIO(saved.read_text())))
        every = (await api.get("/api/dlq")).json()["items"]
        assert sorted(r["id"] for r in exported) == sorted(i["id"] for i in every)
        assert {r["status"] for r in exported} == {"resolved", "abandoned"}

        after = await overview()
        assert after["dead_letters"]["by_status"] == {"resolved": 1, "abandoned": 1}
    finally:
        await api.aclose()
        await shipping.aclose()
