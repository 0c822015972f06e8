"""Classifying exceptions: which ``FailureClass`` an error of our libraries belongs to.

An exception that declares ``failure_class`` (every ``DomainError`` does) keeps it; otherwise
the database (SQLSTATE, SQLAlchemy), HTTP client, Kafka client and builtin exceptions are
mapped below. This module imports those libraries, so only the code that processes failures
(the consumer runtime, the retry loop) imports it; domain modules import the light
``waybill.common.failures``.
"""

from __future__ import annotations

import asyncio
import json
import socket

import asyncpg
import httpx
import pydantic
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from waybill.common.failures.taxonomy import FailureClass, is_retryable

# PostgreSQL SQLSTATE classes (first two characters) -> failure class.
# https://www.postgresql.org/docs/current/errcodes-appendix.html
_SQLSTATE_CLASS: dict[str, FailureClass] = {
    "08": FailureClass.TRANSIENT_DATABASE,  # connection exception
    "40": FailureClass.TRANSIENT_DATABASE,  # serialization failure, deadlock
    "53": FailureClass.TRANSIENT_DATABASE,  # insufficient resources (too many connections)
    "57": FailureClass.TRANSIENT_DATABASE,  # operator intervention (shutdown, query canceled)
    "58": FailureClass.TRANSIENT_DATABASE,  # system error (I/O)
    "22": FailureClass.PERMANENT_INVALID_INPUT,  # data exception
    "23": FailureClass.PERMANENT_INVALID_INPUT,  # integrity constraint violation
    "28": FailureClass.CONFIGURATION,  # invalid authorization (our own credentials)
    "3D": FailureClass.CONFIGURATION,  # invalid catalog name (database missing)
    "42": FailureClass.CONFIGURATION,  # syntax error or missing table: a deploy problem
}
_SQLSTATE_EXACT: dict[str, FailureClass] = {
    "55P03": FailureClass.TRANSIENT_DATABASE,  # lock not available
}


def classify(exc: BaseException) -> FailureClass:
    """The failure class of ``exc``; its ``__cause__`` chain decides when ``exc`` is opaque."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify_one(current)
        if found is not FailureClass.UNKNOWN:
            return found
        current = current.__cause__
    return FailureClass.UNKNOWN


def _classify_one(exc: BaseException) -> FailureClass:
    declared = getattr(exc, "failure_class", None)
    if declared is not None:
        try:
            return FailureClass(declared)
        except ValueError:
            return FailureClass.UNKNOWN
    if isinstance(exc, BaseExceptionGroup):
        return _classify_group(exc)
    for classifier in (_classify_database, _classify_http, _classify_kafka, _classify_builtin):
        found = classifier(exc)
        if found is not None:
            return found
    return FailureClass.UNKNOWN


def _classify_group(group: BaseExceptionGroup[BaseException]) -> FailureClass:
    # A group is as bad as its worst member: one permanent failure makes retrying pointless.
    classes = [classify(inner) for inner in group.exceptions]
    permanent = [c for c in classes if not is_retryable(c)]
    if permanent:
        return permanent[0]
    return classes[0] if classes else FailureClass.UNKNOWN


def _sqlstate(exc: BaseException) -> str | None:
    # asyncpg errors carry ``sqlstate``; SQLAlchemy wraps them (``orig``, then ``__cause__``).
    for candidate in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        for attr in ("sqlstate", "pgcode"):
            code = getattr(candidate, attr, None)
            if isinstance(code, str) and len(code) == 5:
                return code
    return None


def _classify_database(exc: BaseException) -> FailureClass | None:
    code = _sqlstate(exc)
    if code is not None:
        exact = _SQLSTATE_EXACT.get(code)
        if exact is not None:
            return exact
        by_class = _SQLSTATE_CLASS.get(code[:2])
        if by_class is not None:
            return by_class
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return FailureClass.TRANSIENT_DATABASE
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return FailureClass.TRANSIENT_DATABASE  # pool exhausted, connection dropped
    if isinstance(exc, sa_exc.DisconnectionError):
        return FailureClass.TRANSIENT_DATABASE
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return FailureClass.PERMANENT_INVALID_INPUT
    if isinstance(exc, sa_exc.ProgrammingError | sa_exc.ArgumentError):
        return FailureClass.CONFIGURATION
    return None


def _classify_http(exc: BaseException) -> FailureClass | None:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 429:
            return FailureClass.TRANSIENT_RATE_LIMIT
        if status in (401, 403):
            return FailureClass.PERMANENT_AUTH
        if status in (404, 410):
            return FailureClass.PERMANENT_NOT_FOUND
        if status in (408, 425):
            return FailureClass.TRANSIENT_NETWORK
        if 400 <= status < 500:
            return FailureClass.PERMANENT_INVALID_INPUT
        return FailureClass.EXTERNAL_SERVICE
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return FailureClass.TRANSIENT_NETWORK
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return FailureClass.CONFIGURATION
    return None


def _classify_kafka(exc: BaseException) -> FailureClass | None:
    if not isinstance(exc, kafka_errors.KafkaError):
        return None
    if isinstance(exc, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError):
        return FailureClass.TRANSIENT_NETWORK
    if getattr(exc, "retriable", False) or getattr(exc, "invalid_metadata", False):
        return FailureClass.TRANSIENT_NETWORK
    if isinstance(
        exc, kafka_errors.TopicAuthorizationFailedError | kafka_errors.GroupAuthorizationFailedError
    ):
        return FailureClass.CONFIGURATION
    return FailureClass.UNKNOWN


def _classify_builtin(exc: BaseException) -> FailureClass | None:
    # Order matters: TimeoutError and ConnectionError are OSErrors; ValidationError is a ValueError.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError | socket.gaierror):
        return FailureClass.TRANSIENT_NETWORK
    if isinstance(exc, pydantic.ValidationError | json.JSONDecodeError | UnicodeDecodeError):
        return FailureClass.PERMANENT_INVALID_INPUT
    if isinstance(exc, ValueError):
        return FailureClass.PERMANENT_INVALID_INPUT
    if isinstance(exc, ImportError | NotImplementedError | PermissionError):
        return FailureClass.CONFIGURATION
    return None


def worth_retrying(exc: BaseException) -> bool:
    """Whether the retry loop should try ``exc``'s operation again: its class is retryable.

    ``Exception``, not ``BaseException``: a cancelled task must stop, never be retried.
    """
    return isinstance(exc, Exception) and is_retryable(classify(exc))


# SQLSTATEs of a server going away or not there yet: connection exceptions (08xxx),
# admin / crash shutdown and "cannot connect now" (57P01-57P03).
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_MAX_CHAIN = 16


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


def _is_lost(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(
        exc,
        sa_exc.DisconnectionError
        | asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | ConnectionError,
    ):
        return True
    # Not every InterfaceError: "another operation is in progress" on a healthy connection is
    # our own misuse of it, not an outage.
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return True
    # What the next use of a connection broken by a lost server raises ("cannot switch to
    # state 15; another operation (2) is in progress"), seen after a real restart.
    if isinstance(exc, asyncpg.InternalClientError) and "another operation" in str(exc):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_LOST_SQLSTATES)


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database connection went away: that
    connection must be discarded, never pooled again."""
    return any(_is_lost(link) for link in _links(exc))


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached right now: a
    lost connection, a refused or timed-out connect, a pool waiting for connections being
    re-established, or the server refusing more connections (53300). Try again shortly."""
    for link in _links(exc):
        if _is_lost(link) or isinstance(link, TimeoutError | sa_exc.TimeoutError):
            return True
        if type(link) is OSError:  # asyncio's "Multiple exceptions: [Errno 111] ..." on connect
            return True
        if getattr(link, "sqlstate", None) == "53300":
            return True
    return False
