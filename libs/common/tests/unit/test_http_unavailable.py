"""Which exceptions mean "the database is unreachable" (503), and which are bugs (500)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from waybill.common.http.unavailable import database_unavailable


def _caused_by(outer: Exception, cause: Exception) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        OSError("Multiple exceptions: [Errno 111] Connect call failed"),
        PoolTimeoutError("QueuePool limit of size 1 overflow 1 reached"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed mid-operation"),
        asyncpg.exceptions.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        DBAPIError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
        _caused_by(RuntimeError("wrapped"), ConnectionResetError()),
    ],
    ids=repr,
)
def test_an_unreachable_database_is_recognised(exc: Exception) -> None:
    assert database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        FileNotFoundError("template.html"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.InterfaceError("another operation is in progress"),
        ProgrammingError("SELECT nope", {}, Exception("column nope does not exist")),
    ],
    ids=repr,
)
def test_other_errors_are_not_mistaken_for_an_outage(exc: Exception) -> None:
    assert not database_unavailable(exc)
