"""The ASGI layer that makes the provider API misbehave, and the log of what it received.

It wraps the whole FastAPI app (it is what uvicorn serves) because a connection reset needs
the connection itself: uvicorn's ``send`` is a bound method of its request cycle, whose
``transport`` we abort with ``SO_LINGER`` 0 so the client sees a TCP reset (httpx
``ReadError``/``RemoteProtocolError``) instead of any HTTP answer. Inside FastAPI the
``send`` we get is already wrapped by Starlette and the transport is out of reach.

Every fault except ``timeout`` answers before the app runs, so it has no effect; a timeout
lets the app do its work, then holds the answer back (like a provider that charged but whose
answer never arrived) until the hang is over or the client gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waybill.sandbox.errors import ProviderError
from waybill.sandbox.faults import Fault, FaultKnobs

log = structlog.get_logger(__name__)

PROVIDER_PREFIX = "/v1/"
# The SMS provider's routes: the same layer, with the SMS knobs (faults.draw_request_fault).
SMS_PREFIX = "/v1/messages"


@dataclass(frozen=True)
class RequestRecord:
    """One provider API call as ``GET /admin/requests`` lists it."""

    at: float
    method: str
    path: str
    status: int | None
    idempotency_key: str | None
    fault: str | None


class RequestLog:
    """The last ``capacity`` provider API calls, in memory (a restart starts it empty)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=capacity)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def query(self, idempotency_key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest last, at most ``limit``."""
        matching = [
            r
            for r in self._records
            if idempotency_key is None or r.idempotency_key == idempotency_key
        ]
        return [asdict(r) for r in matching[-limit:]] if limit > 0 else []


class FaultLayer:
    """Pure ASGI: latency, 500s, resets, 429s and timeouts on ``/v1/...`` only (the SMS
    provider's ``/v1/messages``: latency, 500s and 429s, from its own knobs)."""

    def __init__(
        self, app: ASGIApp, knobs: FaultKnobs, requests: RequestLog, *, hang_s: float
    ) -> None:
        self.app = app
        self.knobs = knobs
        self.requests = requests
        self.hang_s = hang_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROVIDER_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.time()
        sms = scope["path"].startswith(SMS_PREFIX)
        fault = self.knobs.draw_request_fault(sms=sms)
        faults = self.knobs.current
        latency_ms = faults.sms_latency_ms if sms else faults.latency_ms
        retry_after_s = faults.sms_retry_after_s if sms else faults.retry_after_s
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)

        status: int | None = None

        def note(code: int | None) -> None:
            self.requests.add(
                RequestRecord(
                    at=started,
                    method=scope["method"],
                    path=scope["path"],
                    status=code,
                    idempotency_key=_header(scope, b"idempotency-key"),
                    fault=fault.value if fault else None,
                )
            )

        if fault is Fault.error:
            note(500)
            await _answer(send, ProviderError(500, "api_error", "internal_error", "injected"))
        elif fault is Fault.rate_limit:
            note(429)
            error = ProviderError(429, "rate_limit_error", "rate_limit", "Too many requests")
            await _answer(send, error, {"retry-after": str(retry_after_s)})
        elif fault is Fault.reset:
            note(None)
            await _reset(scope, receive, send)
        elif fault is Fault.timeout:
            held = await _run_buffered(self.app, scope, receive)
            note(held.status)
            await _hold(receive, self.hang_s)
            await held.replay(send)
        else:

            async def observing_send(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    note(status)
                await send(message)

            await self.app(scope, receive, observing_send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _answer(send: Send, error: ProviderError, headers: dict[str, str] | None = None) -> None:
    body = error.body().encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _reset(scope: Scope, receive: Receive, send: Send) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # not served by uvicorn: the closest thing is an error answer
        log.warning("sandbox_reset_unsupported", path=scope["path"])
        await _answer(send, ProviderError(500, "api_error", "internal_error", "reset"))
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN, a reset as the client's kernel sees it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Wait for uvicorn to notice the closed connection so it does not try a 500 of its own.
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass
class _HeldResponse:
    status: int | None
    messages: list[Message]

    async def replay(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


async def _run_buffered(app: ASGIApp, scope: Scope, receive: Receive) -> _HeldResponse:
    held = _HeldResponse(None, [])

    async def buffer(message: Message) -> None:
        if message["type"] == "http.response.start":
            held.status = message["status"]
        held.messages.append(message)

    await app(scope, receive, buffer)
    return held


async def _hold(receive: Receive, hang_s: float) -> None:
    """Sleep ``hang_s``, or less if the client hangs up first (it timed out: nothing to send)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), hang_s)
