"""Slow statements: each one over a threshold is logged as ``db_query_slow`` and counted.

Two hooks cover every statement that goes through a service's engine, one per way in:

* SQLAlchemy statements: the engine's ``before/after_cursor_execute`` events. SQLAlchemy's
  asyncpg adapter runs them as prepared statements, which asyncpg's own query loggers do not
  see.
* The hot-path statements run on the raw asyncpg connection (:func:`waybill.common.db.driver`):
  :class:`TimedConnection`, a thin wrapper of that connection's statement methods, made once
  per connection as the pool opens it. asyncpg's own query logger would do the same job but
  schedules a loop callback per statement: measured at +8.8 us on a 51 us ``SELECT 1``
  (+17 %), against 0.6 us for the wrapper (``bench/slow_queries.py``).

The fast path is two clock reads and a comparison per statement; the statement text is only
normalised (a few regular expressions: literals, parameters and ``IN`` lists become ``?``)
once a statement has been found slow. We normalise by hand rather than with a SQL parser
(sqlparse, sqlglot): we need placeholders, not a parse tree, and only on the rare slow path.
The per-statement cost is measured in ``bench/slow_queries.py`` (figures in its docstring).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.failures.classify import lost_connection
from waybill.common.observability.metrics import DB_SLOW_QUERIES

log = structlog.get_logger(__name__)

MAX_STATEMENT_CHARS = 2000
_STARTED = "_waybill_statement_started"
# Key of a pooled connection's TimedConnection in its record's ``info`` (read by db.driver).
TIMED_CONNECTION = "waybill_timed_connection"

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRINGS = re.compile(r"(?:[EeBbXxNn]|U&)?'(?:[^']|'')*'")
_PARAMS = re.compile(r"\$\d+|%\([^)]*\)s|%s|(?<!:):(?!:)\w+")
_NUMBERS = re.compile(r"(?<![\w$.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_IN_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACES = re.compile(r"\s+")


def normalise_statement(sql: str) -> str:
    """``sql`` with its literals and parameters replaced by ``?`` and its whitespace folded,
    so one slow statement shape is one log text whatever its values (and no value leaks)."""
    text = _COMMENTS.sub(" ", sql)
    text = _STRINGS.sub("?", text)
    text = _PARAMS.sub("?", text)
    text = _NUMBERS.sub("?", text)
    text = _IN_LISTS.sub("(?)", text)
    text = _SPACES.sub(" ", text).strip()
    return text[:MAX_STATEMENT_CHARS]


class SlowQueryWatch:
    """Reports the statements of one engine that take longer than ``threshold_ms``."""

    def __init__(self, *, service: str, threshold_ms: float) -> None:
        self.service = service
        self.threshold_ms = threshold_ms
        self._threshold_s = threshold_ms / 1000
        self._counter = DB_SLOW_QUERIES.labels(service=service)

    def install(self, engine: AsyncEngine) -> None:
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)
        event.listen(sync_engine.pool, "connect", self._on_connect)

    def elapsed_since(self, started: float, statement: str) -> None:
        elapsed = time.perf_counter() - started
        if elapsed >= self._threshold_s:
            self.report(statement, elapsed)

    # -- SQLAlchemy statements -------------------------------------------------------------
    def _before(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    def _after(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        started = getattr(context, _STARTED, None)
        if started is not None:
            self.elapsed_since(started, statement)

    # -- raw asyncpg statements ------------------------------------------------------------
    def _on_connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        raw = getattr(dbapi_connection, "driver_connection", None)
        if raw is not None:
            connection_record.info[TIMED_CONNECTION] = TimedConnection(raw, self, connection_record)

    def report(self, statement: str, elapsed_s: float) -> None:
        self._counter.inc()
        log.warning(
            "db_query_slow",
            statement=normalise_statement(statement),
            duration_ms=round(elapsed_s * 1000, 1),
            threshold_ms=self.threshold_ms,
            service=self.service,
        )


def _timed(name: str) -> Callable[..., Awaitable[Any]]:
    """The connection's statement method ``name``, timed (and discarding a lost connection)."""

    async def method(self: TimedConnection, query: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await getattr(self._conn, name)(query, *args, **kwargs)
        except BaseException as exc:
            self._lost(exc)
            raise
        finally:
            self._watch.elapsed_since(started, query)

    method.__name__ = name
    return method


class TimedConnection:
    """An asyncpg connection whose statement methods report slow statements to a watch.

    Only the statement methods the hot paths call are wrapped; anything else (``transaction``,
    ``is_in_transaction``, ...) is the connection's own attribute.
    """

    __slots__ = ("_conn", "_record", "_watch")

    def __init__(self, conn: Any, watch: SlowQueryWatch, record: Any = None) -> None:
        self._conn = conn
        self._watch = watch
        self._record = record

    def _lost(self, exc: BaseException) -> None:
        # A statement on the raw driver bypasses SQLAlchemy's disconnect handling: without
        # this, a connection that died with its server (a restart) went back to the pool and
        # failed every later checkout that drew it (found by the database-restart tests).
        if self._record is not None and lost_connection(exc):
            self._record.invalidate(exc)

    execute = _timed("execute")
    executemany = _timed("executemany")
    fetch = _timed("fetch")
    fetchrow = _timed("fetchrow")
    fetchval = _timed("fetchval")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
