"""Pytest plugin: the notifier as a real process, and a webhook receiver to deliver to.

The receiver is a real HTTP server on 127.0.0.1 (the dev stack's allow-listed address) in the
test process; each endpoint path answers as the test asks (``/ok``, ``/fail`` with 500,
``/gone`` with 410, ...) and every request is kept for the test to verify (signatures with
the ``standardwebhooks`` library, as a receiver would).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.messaging_stack import messaging_env

from waybill.common import topics
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.db import create_databases
from waybill.devstack.records import envelope, publish
from waybill.devstack.testing import Infra, ServiceProcess, Tenant, new_tenant, start_service

# Retries after 1 s and 1 s: three attempts in about two seconds; an open breaker lets a probe
# through after 2 s.
FAST_NOTIFIER_ENV = {
    "WAYBILL_NOTIFIER_RETRY_SCHEDULE_S": "1,1",
    "WAYBILL_NOTIFIER_BREAKER_RESET_S": "2",
}


@pytest.fixture(scope="session")
def notifier_service(infra: Infra, mail_sandbox: ServiceProcess) -> Iterator[ServiceProcess]:
    from waybill.common.auth import ensure_auth_schema
    from waybill.common.settings import AUTH_DATABASE

    create_databases(infra.server_url, [AUTH_DATABASE])
    asyncio.run(ensure_auth_schema(infra.settings()))
    env = {**FAST_NOTIFIER_ENV, **messaging_env(mail_sandbox)}  # customer email and SMS there
    service = start_service(infra, "notifier", extra_env=env)
    yield service
    service.stop()


@pytest.fixture
async def backend(infra: Infra, notifier_service: ServiceProcess) -> AsyncIterator[Tenant]:
    """A fresh tenant's keys on the notifier."""
    tenant = await new_tenant(infra, notifier_service.url)
    yield tenant
    await tenant.aclose()


async def create_endpoint(
    backend: Tenant, url: str, types: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    """A webhook endpoint of the backend's tenant (``order.cancelled`` unless told)."""
    response = await backend.service.post(
        "/webhook-endpoints",
        json={"url": url, "event_types": types or ["order.cancelled"], **fields},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def cancel_an_order(
    backend: Tenant, infra: Infra, order_id: str | None = None, *, sequence: int = 3
) -> str:
    """Publish an ``order.cancelled`` of an order of the tenant (a new one unless told), as
    orders would; its ``reason`` is ``#<sequence>`` so a receiver can tell two apart."""
    order_id = order_id or f"ord_{uuid.uuid4().hex}"
    record = envelope(
        OrderCancelled(order_id=order_id, reason=f"#{sequence}"),
        tenant_id=backend.id,
        subject=order_id,
        sequence=sequence,
    )
    await publish(infra.bootstrap_servers, topics.ORDERS_EVENTS, record)
    return order_id


async def deliveries_of(backend: Tenant, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The endpoint's messages with their attempts (first page: up to 200)."""
    response = await backend.service.get(
        f"/webhook-endpoints/{endpoint['id']}/deliveries", params={"limit": 200}
    )
    return response.json()["items"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.time() when the request arrived


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request: ``hold`` keeps it waiting (a slow endpoint)
    until the test sets it."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hold: threading.Event | None = None


@dataclass
class Receiver:
    """Answers by the path's last segment: ``fail`` 500, ``gone`` 410, anything else 200, unless
    the test scripted the path (``answer``, ``script``: replies in order, the last repeated)."""

    port: int
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    deciders: dict[str, Callable[[bytes], Reply]] = field(default_factory=dict)

    def respond(self, path: str, decide: Callable[[bytes], Reply]) -> None:
        """Answer each request to ``path`` with ``decide(body)``."""
        self.deciders[path] = decide

    def answer(self, path: str, status: int) -> None:
        self.scripts[path] = [Reply(status)]

    def script(self, path: str, replies: list[Reply]) -> None:
        self.scripts[path] = list(replies)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    store: list[Received] = []
    scripts: dict[str, list[Reply]] = {}
    deciders: dict[str, Callable[[bytes], Reply]] = {}
    lock = threading.Lock()

    def reply_for(path: str, body: bytes) -> Reply:
        if path in deciders:
            return deciders[path](body)
        with lock:
            replies = scripts.get(path)
            if replies:
                return replies.pop(0) if len(replies) > 1 else replies[0]
        # The last path segment says how to answer: .../fail, .../gone, else 200.
        return Reply({"fail": 500, "gone": 410}.get(path.rsplit("/", 1)[-1], 200))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            path = self.path.split("?")[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            store.append(Received(path, headers, body, time.time()))
            reply = reply_for(path, body)
            if reply.hold is not None:
                reply.hold.wait(timeout=120)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:  # the notifier gave up waiting (its timeout) and hung up
                return

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(server.server_address[1], store, scripts, deciders)
    server.shutdown()
    server.server_close()
