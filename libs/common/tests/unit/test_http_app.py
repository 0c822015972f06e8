"""The app factory owns the lifecycle of what it is handed: service lifespan, checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from waybill.common.http.app import create_app
from waybill.common.settings import WaybillSettings


class ClosableCheck:
    def __init__(self) -> None:
        self.closed = False

    async def __call__(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


async def test_the_service_lifespan_runs_and_closable_checks_are_closed_on_shutdown() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("started")
        yield
        events.append("stopped")

    check = ClosableCheck()
    app = create_app(
        service="lifecycle",
        settings=WaybillSettings(),
        routers=[],
        health_checks={"broker": check},
        lifespan=lifespan,
    )
    async with app.router.lifespan_context(app):
        assert events == ["started"]
        assert not check.closed
    assert events == ["started", "stopped"]
    assert check.closed
