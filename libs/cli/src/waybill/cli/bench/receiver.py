"""The webhook receiver of ``waybill bench webhooks``: records arrivals, verifies nothing.

A minimal HTTP/1.1 server on ``asyncio.start_server`` (keep-alive, ``content-length`` bodies:
what the notifier's httpx client sends), in a thread of its own with its own event loop, so
the bench's publisher and samplers never delay an answer and its CPU can be read apart from
theirs (the thread's CPU time, through psutil). It keeps, per request, the ``webhook-id``, the
path, the arrival time and the body, and answers by path: a path in ``failing`` gets 500, any
other 200. Parsing the bodies is left to after the run.

It must not be the bottleneck: its CPU per request is reported beside the notifier's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import psutil

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
FAIL = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\ncontent-type: text/plain\r\n"
    b"\r\nfail"
)


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    path: str
    at: float  # time.time() when the request's head had arrived
    body: bytes
    status: int  # what the receiver answered


@dataclass
class WebhookReceiver:
    """``start()`` binds 127.0.0.1 on a free port; ``stop()`` closes it and joins the thread."""

    failing: frozenset[str] = frozenset()
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _thread: threading.Thread | None = None
    _native_id: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the webhook receiver did not start")

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the receiver's thread so far."""
        for thread in psutil.Process().threads():
            if thread.id == self._native_id:
                return float(thread.user_time + thread.system_time)
        return 0.0

    async def _shutdown(self) -> None:
        """Close the listener and the kept-alive connections, then end the loop."""
        if self._server is not None:
            self._server.close()
        # Closing a kept-alive connection ends its reader at its next read (not a cancel:
        # asyncio's stream callback would log a cancelled handler as an error).
        for writer in list(self._writers):
            writer.close()
        current = asyncio.current_task()
        serving = [task for task in asyncio.all_tasks() if task is not current]
        if serving:
            await asyncio.wait(serving, timeout=5)
        asyncio.get_running_loop().stop()

    def _run(self) -> None:
        self._native_id = threading.get_native_id()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=256)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = time.time()
                lines = head.split(b"\r\n")
                target = lines[0].split(b" ", 2)[1]
                length = 0
                webhook_id = ""
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        webhook_id = value.strip().decode()
                body = await reader.readexactly(length) if length else b""
                path = target.split(b"?", 1)[0].decode()
                failing = path in self.failing
                self.arrivals.append(Arrival(webhook_id, path, at, body, 500 if failing else 200))
                writer.write(FAIL if failing else OK)
                await writer.drain()
        self._writers.discard(writer)
        writer.close()
