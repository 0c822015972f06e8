"""The monitor's admin UI in a real browser (Debian's chromium driven by Playwright) against the
monitor process on real Kafka and PostgreSQL: every figure a page shows is the API's.

Screenshots of every page go to ``test-artifacts/monitor/`` (gitignored); their paths are
printed (``pytest -s``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.capacity_records import agent_events, profile, shipment_events
from tests.monitor_stack import dead_letter
from tests.ui_support import (
    CHROMIUM,
    LAPTOP,
    NEEDS_CHROMIUM,
    PHONE,
    assert_capacity_page,
    at,
    leaves,
    log_in,
    screenshot,
    shown_as,
)

from waybill.common import topics
from waybill.common.auth import issue_key
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.contracts.payments import PaymentCaptured, PaymentCreated, PaymentRefunded
from waybill.common.envelope import EventEnvelope
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish, wait_caught_up
from waybill.devstack.testing import Infra, Tenant

pytestmark = [pytest.mark.infra, NEEDS_CHROMIUM]
ARTIFACTS = "monitor"
POISON = "business_logic_violation"

if CHROMIUM.exists():
    from playwright.async_api import Page, expect


def key_of(client: Any) -> str:
    return str(client.headers["authorization"]).removeprefix("Bearer ")


def cancelled(tenant_id: str) -> EventEnvelope:
    order_id = f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason="customer asked")
    return envelope(event, tenant_id=tenant_id, subject=order_id, sequence=2)


def payment(tenant_id: str, amount: int, refund: int) -> list[EventEnvelope]:
    payment_id, order_id = f"pay_{uuid.uuid4().hex}", f"ord_{uuid.uuid4().hex}"
    ids = {"payment_id": payment_id, "order_id": order_id}
    events = [
        PaymentCreated(
            **ids, amount_cents=amount, currency="EUR", payment_method="card", provider="sandbox"
        ),
        PaymentCaptured(
            **ids, amount_cents=amount, currency="EUR", provider="sandbox", provider_payment_id="p"
        ),
        PaymentRefunded(**ids, amount_cents=refund, refund_id="re_1"),
    ]
    return [
        envelope(event, tenant_id=tenant_id, subject=payment_id, sequence=n)
        for n, event in enumerate(events, start=1)
    ]


def poisoned(tenant_id: str) -> EventEnvelope:
    order_id = f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason="poisoned")
    data = {**event.model_dump(mode="json"), "__poison__": "payments"}
    return envelope(event, tenant_id=tenant_id, subject=order_id, sequence=2, data=data)


async def api_overview(operator: Tenant) -> dict[str, Any]:
    answer = await operator.admin.get("/api/overview")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def with_figures(infra: Infra, operator: Tenant) -> dict[str, Any]:
    """Two cancelled orders, a captured and partly refunded payment and a poison record's dead
    letter of the operator's tenant, consumed by the monitor: its ``/api/overview``. The real
    orders service dead-letters the capture too (its order is unknown there): a second one."""
    await publish(
        infra.bootstrap_servers,
        topics.ORDERS_EVENTS,
        cancelled(operator.id),
        cancelled(operator.id),
    )
    await publish(infra.bootstrap_servers, topics.PAYMENTS_EVENTS, *payment(operator.id, 1250, 250))
    await dead_letter(infra, poisoned(operator.id), failure_type=POISON)

    def complete(figures: dict[str, Any]) -> bool:
        return (
            figures["orders"]["by_status"].get("cancelled") == 2
            and figures["revenue"].get("EUR", {}).get("net_cents") == 1000
            and figures["dead_letters"]["by_failure_type"]
            == {"business_logic_violation": 1, "permanent_not_found": 1}
        )

    return await eventually(
        lambda: api_overview(operator), until=complete, what="the figures in the monitor"
    )


async def test_an_admin_sees_the_apis_figures_on_every_page_retries_by_clicking_and_logs_out(
    infra: Infra, operator: Tenant, page: Page
):
    figures = await with_figures(infra, operator)
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await screenshot(page, ARTIFACTS, "login")

    assert await log_in(page, key_of(operator.service)) == 403
    await expect(page.get_by_role("alert")).to_contain_text("admin key")
    assert await log_in(page, "wb_live_not_a_key") == 401

    await log_in(page, key_of(operator.admin))
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.locator("#live")).to_be_visible()  # the event stream answered
    await expect(page.locator("canvas#chart-orders")).to_be_visible()
    await expect(page.locator("canvas#chart-failures")).to_be_visible()
    shown = await page.eval_on_selector_all(
        "[data-figure]",
        "els => els.map(e => [e.dataset.figure, e.dataset.format || '', e.textContent.trim()])",
    )
    assert {path: text for path, _, text in shown} == {
        path: shown_as(at(figures, path), fmt) for path, fmt, _ in shown
    }
    counted = ("orders", "payments", "revenue", "dead_letters", "shipments", "notifications")
    assert {path for path, _, _ in shown} >= leaves({k: figures[k] for k in counted})
    assert at(figures, "orders.by_status.cancelled") == 2
    assert "12.50" in await page.locator('[data-figure="revenue.EUR.captured_cents"]').inner_text()
    await expect(page.locator("[data-health]")).to_have_text("degraded")  # services stopped
    await screenshot(page, ARTIFACTS, "overview")
    await page.set_viewport_size(PHONE)
    await screenshot(page, ARTIFACTS, "overview-phone")
    await page.set_viewport_size(LAPTOP)

    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, cancelled(operator.id))
    await expect(page.locator('[data-figure="orders.by_status.cancelled"]')).to_have_text(
        "3", timeout=20_000
    )

    await page.get_by_role("link", name="Failure taxonomy").click()
    await expect(page.get_by_role("heading", name="Failure taxonomy")).to_be_visible()
    for failure_type, count in figures["dead_letters"]["by_failure_type"].items():
        await expect(page.locator(f'[data-failure-count="{failure_type}"]')).to_have_text(
            str(count)
        )
    await expect(page.locator("canvas#chart-failures")).to_be_visible()
    await screenshot(page, ARTIFACTS, "taxonomy")

    await page.get_by_role("link", name="Dead letters").click()
    listed = await operator.admin.get("/api/dlq", params={"failure_type": POISON})
    (letter,) = listed.json()["items"]
    row = page.locator(f'tr[data-letter="{letter["id"]}"]')
    await expect(row.locator("[data-status]")).to_have_text("pending")
    await expect(row).to_contain_text(POISON)
    await expect(page.locator("#groups")).to_contain_text(letter["fingerprint"])
    await screenshot(page, ARTIFACTS, "dead-letters")
    await row.get_by_role("button", name="Retry").click()
    await expect(row.locator("[data-status]")).to_have_text("retrying")
    detail = (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()
    assert detail["status"] == "retrying"
    assert [entry["action"] for entry in detail["audit"]] == ["retried"]
    await screenshot(page, ARTIFACTS, "dead-letters-retried")

    await page.get_by_role("link", name="Retry policy").click()
    await expect(page.get_by_role("heading", name="Retry policy")).to_be_visible()
    now = (await api_overview(operator))["dead_letters"]
    outcomes = await page.eval_on_selector_all(
        "#outcomes tr[data-failure-type]",
        """rows => Object.fromEntries(rows.map(r => [r.dataset.failureType, Object.fromEntries(
             [...r.querySelectorAll('[data-outcome]')].map(c => [c.dataset.outcome, +c.textContent])
           )]))""",
    )
    assert {kind: sum(row.values()) for kind, row in outcomes.items()} == now["by_failure_type"]
    assert outcomes[POISON]["retrying"] == 1
    assert outcomes["permanent_not_found"]["pending"] == 1
    by_status = {s: sum(row[s] for row in outcomes.values()) for s in now["by_status"]}
    assert by_status == now["by_status"]
    await screenshot(page, ARTIFACTS, "retry-policy")

    await page.goto("/ui/dead-letters?status=abandoned")
    await expect(page.get_by_text("No dead letters match these filters.")).to_be_visible()

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.goto("/ui/dead-letters")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_a_post_without_the_sessions_csrf_token_is_refused_with_403(
    infra: Infra, operator: Tenant, page: Page
):
    await dead_letter(infra, poisoned(operator.id))
    (letter,) = await eventually(
        lambda: _items(operator), until=lambda items: len(items) == 1, what="the dead letter"
    )
    await log_in(page, key_of(operator.admin))
    abandon = f"/ui/dead-letters/{letter['id']}/abandon"

    without = await page.request.post(abandon, form={"next": "/ui/dead-letters"})
    forged = await page.request.post(abandon, form={"csrf_token": "forged"})
    logout = await page.request.post("/logout")
    login = await page.request.post("/login", form={"api_key": key_of(operator.admin)})

    assert [r.status for r in (without, forged, logout, login)] == [403, 403, 403, 403]
    assert (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()["status"] == "pending"
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()  # still in


async def test_a_revoked_keys_session_stops_working(infra: Infra, operator: Tenant, page: Page):
    issued = await issue_key(infra.settings(), tenant_id=operator.id, role="admin")
    await log_in(page, issued.key)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = next(c for c in await page.context.cookies() if c["name"].startswith("waybill"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert issued.key not in cookie["value"]

    revoked = await operator.admin.post(f"/auth/keys/{issued.key_id}/revoke")
    assert revoked.status_code == 200, revoked.text

    async def login_page_shown() -> bool:
        await page.goto("/")
        return await page.get_by_role("heading", name="Log in").is_visible()

    await eventually(login_page_shown, what="the login page after the revocation")


async def with_capacity(infra: Infra, operator: Tenant) -> dict[str, Any]:
    """Two agents (one of them later at capacity 1 in a postal code with two shipments: a
    hotspot) and their shipments, as shipping publishes them: ``/api/overview``'s capacity."""
    ada, bob = f"agt_{uuid.uuid4().hex}", f"agt_{uuid.uuid4().hex}"
    await publish(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        *agent_events(operator.id, ada, profile(4, ["10115", "10117"]), profile(1, ["10117"])),
        *agent_events(operator.id, bob, profile(4, ["10115"], name="Bob")),
        *shipment_events(operator.id, "10117", ada, "in_transit"),
        *shipment_events(operator.id, "10117", ada, "in_transit", "failed"),
        *shipment_events(operator.id, "10115", bob, "in_transit"),
        *shipment_events(operator.id, "10115", bob, "in_transit", "delivered"),
    )

    await wait_caught_up(infra.bootstrap_servers, "monitor", topics.SHIPPING_EVENTS)
    capacity: dict[str, Any] = (await api_overview(operator))["capacity"]
    assert [code["active_shipments"] for code in capacity["postal_codes"]] == [1, 2]
    return capacity


async def test_the_capacity_page_shows_the_apis_capacity_with_its_hotspots(
    infra: Infra, operator: Tenant, page: Page
):
    capacity = await with_capacity(infra, operator)
    await log_in(page, key_of(operator.admin))
    nav = await page.locator("header nav a").all_inner_texts()
    assert nav[:2] == ["Overview", "Capacity"]

    await page.get_by_role("link", name="Capacity").click()

    postal_codes = await assert_capacity_page(page, capacity)
    assert [row["hotspot_row"] for row in postal_codes] == [False, True]  # 10117: 2 of 1
    utilisation = page.locator('tr[data-postal-code="10117"] [data-field="utilisation"]')
    await expect(utilisation).to_have_text("200.0 %")
    await expect(page.locator("#hotspots")).to_contain_text("10117")
    await screenshot(page, ARTIFACTS, "capacity")
    await page.set_viewport_size(PHONE)
    await expect(page.locator("#postal-codes")).to_be_visible()
    await screenshot(page, ARTIFACTS, "capacity-phone")


async def _items(operator: Tenant) -> list[dict[str, Any]]:
    return (await operator.admin.get("/api/dlq")).json()["items"]  # type: ignore[no-any-return]
