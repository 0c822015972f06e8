"""An unreachable database is a 503 with ``Retry-After``, never a 500.

When a service's PostgreSQL stops, restarts or fails over, requests meet it in several
guises, depending on where they were when it went away (seen with a real stop/start under
load): refused or reset connections (``ConnectionError``, a bare ``OSError`` from asyncio's
connect, ``TimeoutError``), SQLAlchemy's wrappers of those
(``DBAPIError`` with the driver's error as its cause), SQLAlchemy's pool timing out while
every connection is being re-established (``sqlalchemy.exc.TimeoutError``), asyncpg's errors
on the hot-path statements that bypass SQLAlchemy (``ConnectionDoesNotExistError``,
``InterfaceError: connection is closed``, and ``InternalClientError`` from the next use of
a connection that broke that way), and the server's own answers while it shuts down or
starts (SQLSTATE class 08 connection exceptions, 57P01-57P03 admin/crash shutdown and
"cannot connect now", 53300 too many connections). All of them mean "try again shortly";
none is a bug in the request. :func:`database_unavailable` recognises them anywhere in an
exception's cause chain, and :func:`unavailable_problem` renders the answer.
"""

from __future__ import annotations

from typing import Final

import structlog
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from waybill.common.http.problems import Problem

log = structlog.get_logger(__name__)

RETRY_AFTER_S: Final = 2
_UNAVAILABLE_SQLSTATES: Final = ("08", "57P01", "57P02", "57P03", "53300")
_MAX_CHAIN: Final = 16


def _links(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it: ``__cause__``/``__context__`` and SQLAlchemy's ``orig``."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < _MAX_CHAIN:
        current = todo.pop()
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        for linked in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return chain


def _means_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | PoolTimeoutError):
        return True
    if type(exc) is OSError:  # asyncio's "Multiple exceptions: [Errno 111] ..." on connect
        return True
    name = type(exc).__name__
    if name == "ConnectionDoesNotExistError":
        return True
    if name == "InterfaceError" and "connection is closed" in str(exc):
        return True
    # What the next use of a connection broken by the lost server raises ("cannot switch to
    # state 15; another operation (2) is in progress"): statements on the raw driver path
    # (db.driver) fail outside SQLAlchemy's error handling, so the pool is not told that the
    # connection died and hands it out once more (seen with a real stop under load).
    if name == "InternalClientError" and "another operation" in str(exc):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or anything that caused it) says the database cannot be reached."""
    return any(_means_unreachable(link) for link in _links(exc))


def unavailable_problem_for(exc: BaseException) -> Problem | None:
    """The 503 for an exception that means the database is unreachable (logged), else None."""
    if not database_unavailable(exc):
        return None
    log.warning("http_database_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
    return unavailable_problem()


def unavailable_problem() -> Problem:
    return Problem(
        503,
        "DATABASE_UNAVAILABLE",
        "Database unavailable",
        "The service cannot reach its database right now; retry shortly.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
