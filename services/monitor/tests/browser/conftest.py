"""The browser (Debian's chromium under Playwright, once per session) and a fresh page on the
monitor process for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from tests.ui_support import CHROMIUM, LAPTOP, launched

from waybill.devstack.testing import ServiceProcess

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium: apt-get install -y chromium")
    async for chromium in launched():
        yield chromium


@pytest.fixture
async def page(browser: Browser, monitor_service: ServiceProcess) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=monitor_service.url, viewport=LAPTOP)
    tab = await context.new_page()
    yield tab
    await context.close()
