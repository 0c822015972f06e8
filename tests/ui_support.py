"""What the browser tests of the monitor's UI share: Debian's chromium under Playwright, the
login, screenshots, and reading the figures a page shows to compare them with ``/api/overview``.

Screenshots go to ``test-artifacts/<folder>/`` (gitignored); their paths are printed
(``pytest -s``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from waybill.devstack.eventually import eventually

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


async def launched() -> AsyncIterator[Browser]:
    """The browser for a session fixture: ``yield from`` style (``async for``)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        await chromium.close()


async def log_in(page: Page, key: str) -> int:
    """Log in on the page with ``key``; the login POST's status."""
    await page.goto("/")
    await page.get_by_label("Admin API key").fill(key)
    async with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
    return (await answer.value).status


async def screenshot(page: Page, folder: str, name: str) -> Path:
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def at(figures: dict[str, Any], path: str) -> Any:
    node: Any = figures
    for name in path.split("."):
        node = node[name]
    return node


def shown_as(value: Any, fmt: str) -> str:
    """How the UI writes a figure (``data-format``)."""
    if fmt == "cents":
        return f"{value / 100:,.2f}"
    if fmt == "percent":
        return "no deliveries" if value is None else f"{value * 100:.1f} %"
    return str(value)


def leaves(node: Any, prefix: str = "") -> set[str]:
    """The dotted paths of every figure under ``node``."""
    if not isinstance(node, dict):
        return {prefix}
    found: set[str] = set()
    for name, value in node.items():
        found |= leaves(value, f"{prefix}.{name}" if prefix else name)
    return found


async def figures_shown(page: Page) -> dict[str, tuple[str, str]]:
    """Every ``[data-figure]`` on the page: its path -> (format, text)."""
    shown = await page.eval_on_selector_all(
        "[data-figure]",
        "els => els.map(e => [e.dataset.figure, e.dataset.format || '', e.textContent.trim()])",
    )
    return {path: (fmt, text) for path, fmt, text in shown}


def assert_shows(shown: dict[str, tuple[str, str]], figures: dict[str, Any]) -> None:
    """Every figure on the page is the API's, written as the UI writes it."""
    assert {path: text for path, (_, text) in shown.items()} == {
        path: shown_as(at(figures, path), fmt) for path, (fmt, _) in shown.items()
    }


def fleet_figures(figures: dict[str, Any]) -> Any:
    return figures["idempotency"], figures["integrations"]


async def stable_overview(
    client: httpx.AsyncClient,
    page: Page,
    path: str,
    part: Callable[[dict[str, Any]], Any] = fleet_figures,
) -> dict[str, Any]:
    """``path`` loaded between two answers of ``/api/overview`` whose ``part`` is equal (those
    figures stood still meanwhile): the figures the page was rendered with."""

    async def attempt() -> tuple[dict[str, Any], bool]:
        before = (await client.get("/api/overview")).json()
        await page.goto(path)
        after = (await client.get("/api/overview")).json()
        return after, part(before) == part(after)

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


async def assert_fleet_pages(
    tab: Page, api: httpx.AsyncClient
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Open the idempotency and third-party calls pages from the nav and check every row and
    cell against ``/api/overview``; the API's rows by ``service/group`` and
    ``service/integration``."""
    from playwright.async_api import expect

    await tab.get_by_role("link", name="Idempotency").click()
    await expect(tab.get_by_role("heading", name="Idempotency")).to_be_visible()
    figures = await stable_overview(api, tab, "/ui/idempotency")
    shown = await rows_shown(tab, "#idempotency", "group")
    groups = {f"{g['service']}/{g['consumer_group']}": g for g in figures["idempotency"]}
    assert set(shown) == set(groups)
    for name, cells in shown.items():
        assert cells == {f: expected_cell(groups[name][f], f) for f in cells}, name
    await expect(tab.locator("canvas#chart-duplicates")).to_be_visible()

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
            expected["last_error_at"] = datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert cells == expected, name
    await expect(tab.locator("canvas#chart-integrations")).to_be_visible()
    return groups, calls


async def assert_capacity_page(page: Page, capacity: dict[str, Any]) -> list[dict[str, Any]]:
    """On the capacity page: every postal code's and agent's row is the API's ``capacity``;
    the postal codes' rows as shown (with ``hotspot_row``: the row is highlighted)."""
    from playwright.async_api import expect

    await expect(page.get_by_role("heading", name="Capacity")).to_be_visible()
    await expect(page.locator("canvas#chart-utilisation")).to_be_visible()
    postal_codes = await page.eval_on_selector_all(
        "#postal-codes tr[data-postal-code]",
        """rows => rows.map(r => ({postal_code: r.dataset.postalCode,
             hotspot_row: r.classList.contains('hotspot'),
             ...Object.fromEntries([...r.querySelectorAll('[data-field]')].map(c =>
               [c.dataset.field, c.dataset.value ?? c.textContent.trim()]))}))""",
    )
    assert [
        {
            "postal_code": row["postal_code"],
            "agents": int(row["agents"]),
            "active_shipments": int(row["active_shipments"]),
            "capacity": int(row["capacity"]),
            "utilisation": float(row["utilisation"]),
            "hotspot": row["hotspot"] == "true",
        }
        for row in postal_codes
    ] == capacity["postal_codes"]
    agents = await page.eval_on_selector_all(
        "#agents tr[data-agent]",
        """rows => rows.map(r => ({id: r.dataset.agent, name: r.cells[0].textContent.trim(),
             ...Object.fromEntries([...r.querySelectorAll('[data-field]')].map(c =>
               [c.dataset.field, c.dataset.value ?? c.textContent.trim()]))}))""",
    )
    assert [
        {
            "id": row["id"],
            "name": row["name"],
            "active_shipments": int(row["active_shipments"]),
            "capacity": int(row["capacity"]),
            "utilisation": float(row["utilisation"]),
        }
        for row in agents
    ] == capacity["agents"]
    return postal_codes  # type: ignore[no-any-return]
