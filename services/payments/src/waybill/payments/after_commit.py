"""Work to start once a consumer's transaction has committed (the charger's provider calls).

The handlers run inside the consumer's inbox transaction; the provider is called only after
that transaction commits. ``AfterCommitEngine`` is how we learn that it did: the consumer
runtime opens its transactions with ``engine.begin()``, and ours runs the callbacks a handler
staged (``after_commit``) once the commit returned -- never after a rollback, so a batch that
is rolled back and re-applied record by record queues each payment once it really exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_AFTER_COMMIT = "waybill_payments_after_commit"


def after_commit(conn: AsyncConnection, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``conn``'s transaction has committed (if it is an
    ``AfterCommitEngine`` transaction); dropped if it rolls back."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(callback)


class AfterCommitEngine(AsyncEngine):
    """The service's engine (same pool) whose ``begin()`` runs staged after-commit callbacks."""

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        staged: list[Callable[[], None]] = []
        async with super().begin() as conn:
            conn.info[_AFTER_COMMIT] = staged
            try:
                yield conn
            finally:
                # conn.info lives as long as the pooled connection: never leak into its next use.
                conn.info.pop(_AFTER_COMMIT, None)
        for callback in staged:  # reached only when the commit above succeeded
            callback()
