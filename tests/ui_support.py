"""What the browser tests of the monitor's UI share: Debian's chromium under Playwright, the
login, screenshots, and reading the figures a page shows to compare them with ``/api/overview``.

Screenshots go to ``test-artifacts/<folder>/`` (gitignored); their paths are printed
(``pytest -s``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

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
