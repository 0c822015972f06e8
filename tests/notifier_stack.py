"""Pytest plugin: the notifier as a real process, and a webhook receiver to deliver to.

The receiver is a real HTTP server on 127.0.0.1 (the dev stack's allow-listed address) in the
test process; each endpoint path answers as the test asks (``/ok``, ``/fail`` with 500,
``/gone`` with 410, ...) and every request is kept for the test to verify (signatures with
the ``standardwebhooks`` library, as a receiver would).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.messaging_stack import messaging_env

from waybill.common.db import create_databases
from waybill.devstack.testing import Infra, ServiceProcess, Tenant, new_tenant, start_service

# Retries after 1 s and 1 s: three attempts in about two seconds.
FAST_NOTIFIER_ENV = {"WAYBILL_NOTIFIER_RETRY_SCHEDULE_S": "1,1"}


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


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers by the path's last segment: ``fail`` 500, ``gone`` 410, anything else 200."""

    port: int
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # path -> status, set by a test

    def answer(self, path: str, status: int) -> None:
        self.answers[path] = status

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    store: list[Received] = []
    answers: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            path = self.path.split("?")[0]
            store.append(Received(path, {k.lower(): v for k, v in self.headers.items()}, body))
            # The last path segment says how to answer: .../fail, .../gone, else 200.
            default = {"fail": 500, "gone": 410}.get(path.rsplit("/", 1)[-1], 200)
            status = answers.get(path, default)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(server.server_address[1], store, answers)
    server.shutdown()
    server.server_close()
