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
exception's cause chain (``failures.classify.database_unreachable``), and
:func:`unavailable_problem` renders the answer.
"""

from __future__ import annotations

from typing import Final

import structlog

from waybill.common.failures.classify import database_unreachable
from waybill.common.http.problems import Problem

log = structlog.get_logger(__name__)

RETRY_AFTER_S: Final = 2

# One definition of "the database is unreachable", shared with the consumers' pause and the
# pool's discarding of dead connections (waybill.common.failures.classify).
database_unavailable = database_unreachable


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
