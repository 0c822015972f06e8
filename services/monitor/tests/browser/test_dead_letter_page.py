"""A dead letter's page in a real browser: bad edits and a wrong replay key are refused with a
stable code and change nothing; a valid edit is retried with the change in the audit trail."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from tests.monitor_stack import dead_letter
from tests.ui_support import CHROMIUM, NEEDS_CHROMIUM, log_in

from waybill.devstack.eventually import eventually
from waybill.devstack.testing import Infra, Tenant

from .test_admin_ui import key_of, poisoned

pytestmark = [pytest.mark.infra, NEEDS_CHROMIUM]

if CHROMIUM.exists():
    from playwright.async_api import Page, expect


async def pending_letter(infra: Infra, operator: Tenant) -> dict[str, Any]:
    await dead_letter(infra, poisoned(operator.id))
    (letter,) = await eventually(
        lambda: _items(operator), until=lambda items: len(items) == 1, what="the dead letter"
    )
    return letter


async def _items(operator: Tenant) -> list[dict[str, Any]]:
    return (await operator.admin.get("/api/dlq")).json()["items"]  # type: ignore[no-any-return]


async def detail(operator: Tenant, letter_id: str) -> dict[str, Any]:
    return (await operator.admin.get(f"/api/dlq/{letter_id}")).json()  # type: ignore[no-any-return]


async def test_an_edit_that_is_no_json_or_breaks_the_schema_is_refused_and_changes_nothing(
    infra: Infra, operator: Tenant, page: Page
) -> None:
    letter = await pending_letter(infra, operator)
    await log_in(page, key_of(operator.admin))
    await page.goto(f"/ui/dead-letters/{letter['id']}")
    await expect(page.locator("#letter [data-status]")).to_have_text("pending")
    edit = page.locator("#edit-data")
    data = json.loads(await edit.input_value())
    assert data["__poison__"] == "payments"

    await edit.fill("{not json")
    async with page.expect_response(lambda r: r.url.endswith("/retry")) as answer:
        await page.get_by_role("button", name="Retry with these data").click()
    assert (await answer.value).status == 422
    await expect(page.get_by_role("alert")).to_contain_text("INVALID_EVENT_DATA")

    await page.go_back()
    del data["order_id"]
    await page.locator("#edit-data").fill(json.dumps(data))
    async with page.expect_response(lambda r: r.url.endswith("/retry")) as answer:
        await page.get_by_role("button", name="Retry with these data").click()
    assert (await answer.value).status == 422
    await expect(page.get_by_role("alert")).to_contain_text("order.cancelled")
    await expect(page.locator("#field-errors")).to_contain_text("order_id: Field required")

    unchanged = await detail(operator, letter["id"])
    assert unchanged["status"] == "pending" and unchanged["audit"] == []


async def test_a_valid_edit_is_retried_with_the_change_in_the_audit_trail(
    infra: Infra, operator: Tenant, page: Page
) -> None:
    letter = await pending_letter(infra, operator)
    await log_in(page, key_of(operator.admin))
    await page.goto(f"/ui/dead-letters/{letter['id']}")
    edit = page.locator("#edit-data")
    data = json.loads(await edit.input_value())
    del data["__poison__"]
    await edit.fill(json.dumps(data))
    await page.locator('#edit-retry select[name="priority"]').select_option("critical")
    await page.get_by_role("button", name="Retry with these data").click()
    await expect(page.locator("#letter [data-status]")).not_to_have_text("pending")
    await expect(page.locator('#audit tr[data-action="retried"]')).to_contain_text("critical")

    (entry,) = (await detail(operator, letter["id"]))["audit"]
    assert entry["action"] == "retried" and entry["detail"]["priority"] == "critical"
    assert entry["detail"]["data"]["after"] == data
    assert entry["detail"]["data"]["before"]["__poison__"] == "payments"


async def test_a_webhook_replay_with_a_key_that_is_no_admin_key_of_the_tenant_is_refused(
    infra: Infra, operator: Tenant, page: Page
) -> None:
    await dead_letter(
        infra,
        poisoned(operator.id),
        group="notifier",
        kind="delivery",
        delivery_id=f"msg_{uuid.uuid4().hex}",
        endpoint_id=f"whe_{uuid.uuid4().hex}",
    )
    (letter,) = await eventually(
        lambda: _items(operator), until=lambda items: len(items) == 1, what="the dead letter"
    )
    assert letter["kind"] == "delivery"
    await log_in(page, key_of(operator.admin))
    await page.goto("/ui/dead-letters")
    row = page.locator(f'tr[data-letter="{letter["id"]}"]')
    await row.get_by_label("Admin key").fill(key_of(operator.service))
    async with page.expect_response(lambda r: r.url.endswith("/retry")) as answer:
        await row.get_by_role("button", name="Replay").click()
    assert (await answer.value).status == 403
    await expect(page.get_by_role("alert")).to_contain_text("REPLAY_KEY_REJECTED")
    unchanged = await detail(operator, letter["id"])
    assert unchanged["status"] == "pending" and unchanged["audit"] == []
