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


def test_a_process_without_the_api_role_serves_only_health_metrics_and_documents() -> None:
    from fastapi import APIRouter
    from fastapi.testclient import TestClient

    business = APIRouter()

    @business.get("/things")
    async def things() -> dict[str, str]:
        return {"ok": "yes"}

    def app_with(roles: str) -> TestClient:
        app = create_app(
            service="roles",
            settings=WaybillSettings(roles=roles),
            routers=[business],
            health_checks={},
        )
        return TestClient(app)

    relay_only = app_with("relay,consumer")
    assert relay_only.get("/things").status_code == 404
    assert relay_only.get("/health/live").status_code == 200
    assert relay_only.get("/metrics").status_code == 200
    assert app_with("").get("/things").json() == {"ok": "yes"}
    assert app_with("api").get("/things").status_code == 200
