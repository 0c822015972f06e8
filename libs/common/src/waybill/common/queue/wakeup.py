"""The after-commit wake-up: one LISTEN connection per worker on ``QUEUE_CHANNEL``.

An enqueue NOTIFYs inside its transaction, so the worker hears about a job only once it is
visible. When the connection is down the worker still polls (``QueueWorker.poll_s``), so a
lost notification delays a job, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from waybill.common.queue.schema import QUEUE_CHANNEL

log = structlog.get_logger(__name__)


class Wakeup:
    """Sets ``event`` when a NOTIFY for ``queue`` arrives (or ``wake()`` is called)."""

    def __init__(self, dsn: str, queue: str) -> None:
        self.dsn = dsn
        self.queue = queue
        self.event = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    def wake(self) -> None:
        self.event.set()

    async def ensure_listening(self) -> None:
        """(Re)open the LISTEN connection if it is not open; failures are logged, the
        worker polls meanwhile."""
        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            conn = await asyncpg.connect(self.dsn)
            await conn.add_listener(QUEUE_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("queue_listen_failed", queue=self.queue, error=str(exc))
            return
        self._conn = conn
        self.event.set()  # anything enqueued while we were not listening: look once

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.queue:
            self.event.set()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._conn.close(timeout=2)
            self._conn = None
