"""One sandbox process (fresh database) for these tests, and a real webhook receiver.

The receiver is a small uvicorn server inside the test process; the sandbox posts its
webhooks to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from waybill.devstack.infra import free_port
from waybill.devstack.testing import Infra, ServiceProcess, eventually, start_service

API_KEY = "sk_test_sandbox_tests"
WEBHOOK_SECRET = "whsec_sandbox_tests"  # noqa: S105 - a test secret


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class WebhookReceiver:
    """Records every POST; answers ``failures[intent]`` times 500 for that intent, then 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def for_intent(self, intent_id: str) -> list[Received]:
        return [r for r in self.received if r.event["data"]["object"]["id"] == intent_id]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        received = Received(headers, body)
        self.received.append(received)
        intent_id = received.event["data"]["object"]["id"]
        status = 200
        if self.failures.get(intent_id, 0) > 0:
            self.failures[intent_id] -= 1
            status = 500
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    app = WebhookReceiver()
    port = free_port()
    app.url = f"http://127.0.0.1:{port}/webhooks/provider"
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    # uvicorn offers no event to await, only a flag
    await eventually(lambda: server.started, timeout_s=10, interval_s=0.01, what="receiver up")
    yield app
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
def sandbox(infra: Infra, receiver: WebhookReceiver) -> Iterator[ServiceProcess]:
    env = {
        "WAYBILL_SANDBOX_DATABASE": infra.new_database("sandbox"),
        "WAYBILL_SANDBOX_WEBHOOK_URL": receiver.url,
        "WAYBILL_SANDBOX_ASYNC_SETTLE_S": "0.3",
        "WAYBILL_PROVIDER_API_KEY": API_KEY,
        "WAYBILL_PROVIDER_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    service = start_service(infra, "sandbox", extra_env=env)
    yield service
    service.stop()


class SandboxApi:
    """The test's view of the sandbox: a keyed provider client plus the admin reads."""

    def __init__(self, http: httpx.AsyncClient, process: ServiceProcess) -> None:
        self.http = http
        self.process = process

    @staticmethod
    def new_key() -> str:
        return f"key-{uuid.uuid4().hex}"

    @staticmethod
    def intent_body(payment_method: str = "pm_card_ok", **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "amount": 2500,
            "currency": "USD",
            "payment_method": payment_method,
            "metadata": {"order_id": f"ord_{uuid.uuid4().hex[:12]}"},
        }
        body.update(overrides)
        return body

    async def create_intent(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return await self.http.post(
            "/v1/payment_intents", json=body, headers={"Idempotency-Key": key or self.new_key()}
        )

    async def refund(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return await self.http.post(
            "/v1/refunds", json=body, headers={"Idempotency-Key": key or self.new_key()}
        )

    async def ledger(self, order_id: str) -> dict[str, list[dict[str, Any]]]:
        response = await self.http.get(
            "/ledger", params={"metadata_key": "order_id", "metadata_value": order_id}
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def charges(self, order_id: str) -> list[dict[str, Any]]:
        return (await self.ledger(order_id))["charges"]

    async def set_faults(self, **knobs: Any) -> None:
        response = await self.http.put("/admin/faults", json=knobs)
        assert response.status_code == 200, response.text

    async def webhook_events(self, intent_id: str) -> list[dict[str, Any]]:
        response = await self.http.get("/admin/webhooks", params={"payment_intent": intent_id})
        assert response.status_code == 200, response.text
        return response.json()["events"]  # type: ignore[no-any-return]

    async def status(self, intent_id: str) -> str:
        response = await self.http.get(f"/v1/payment_intents/{intent_id}")
        assert response.status_code == 200, response.text
        return response.json()["status"]  # type: ignore[no-any-return]


@pytest.fixture
def smtp_port(sandbox: ServiceProcess) -> int:
    """The sandbox's SMTP server (a free port the test support gave it)."""
    return sandbox.listeners["WAYBILL_SANDBOX_SMTP_PORT"]


@pytest.fixture
async def api(sandbox: ServiceProcess) -> AsyncIterator[SandboxApi]:
    """A provider API client; the fault knobs are put back after each test."""
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    ) as http:
        yield SandboxApi(http, sandbox)
        reset = await http.post("/admin/faults/reset")
        assert reset.status_code == 200, reset.text
