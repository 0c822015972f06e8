"""Classifying exceptions: which ``FailureType`` an error belongs to, and how sure we are.

Precedence (the exception's type beats its message):

1. an exception that declares ``failure_type`` (every ``DomainError`` does; ``failure_class``
   is the old name) keeps it: confidence 1.0;
2. a known library exception: the database (SQLSTATE, SQLAlchemy), HTTP client (status), Kafka
   client and builtin exceptions mapped below: 0.9;
3. a message pattern (``_PATTERNS``) of an exception no type decided: 0.6;
4. nothing: ``unknown``, 0.3.

Each step looks along the ``__cause__`` chain before the next one starts, so an opaque wrapper
of a known error is classified by what it wraps, and a pattern never beats a type further down
the chain. This module imports the client libraries, so only the code that processes failures
(the consumer runtime, the retry loop) imports it; domain modules import the light
``waybill.common.failures``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket

import asyncpg
import httpx
import pydantic
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from waybill.common.failures.taxonomy import (
    DECLARED,
    KNOWN_TYPE,
    MESSAGE_PATTERN,
    UNCLASSIFIED,
    Classification,
    FailureType,
    Remediation,
    failure_type,
    is_retryable,
)

_T = FailureType

# PostgreSQL SQLSTATE classes (first two characters) -> failure type.
# https://www.postgresql.org/docs/current/errcodes-appendix.html
_SQLSTATE_CLASS: dict[str, FailureType] = {
    "08": _T.TRANSIENT_DATABASE,  # connection exception
    "40": _T.TRANSIENT_DATABASE,  # serialization failure, deadlock
    "53": _T.TRANSIENT_DATABASE,  # insufficient resources (too many connections)
    "57": _T.TRANSIENT_DATABASE,  # operator intervention (shutdown, query canceled)
    "58": _T.TRANSIENT_DATABASE,  # system error (I/O)
    "22": _T.PERMANENT_INVALID_INPUT,  # data exception
    "23": _T.PERMANENT_INVALID_INPUT,  # integrity constraint violation
    "28": _T.PERMANENT_AUTHENTICATION,  # invalid authorization (our own credentials)
    "3D": _T.CONFIGURATION_MISSING_ENV,  # invalid catalog name (database missing)
    "42": _T.CONFIGURATION_MISSING_ENV,  # syntax error or missing table: a deploy problem
}
_SQLSTATE_EXACT: dict[str, FailureType] = {
    "55P03": _T.TRANSIENT_DATABASE,  # lock not available
    "42501": _T.CONFIGURATION_PERMISSIONS,  # insufficient privilege
    "53100": _T.SYSTEM_DISK_FULL,  # disk full
    "53200": _T.SYSTEM_OUT_OF_MEMORY,  # out of memory
}

# Messages of exceptions no type decided, first match wins. Conservative on purpose: a pattern
# that sends a blip to a permanent type dead-letters it without a retry.
_PATTERNS: list[tuple[re.Pattern[str], FailureType]] = [
    (re.compile(p, re.IGNORECASE), t)
    for p, t in (
        (r"no space left|disk (is )?full", _T.SYSTEM_DISK_FULL),
        (r"out of memory|cannot allocate memory", _T.SYSTEM_OUT_OF_MEMORY),
        (r"cpu (overload|quota|limit)|overloaded|load shed", _T.SYSTEM_CPU_OVERLOAD),
        (r"rate.?limit|too many requests|throttl", _T.TRANSIENT_RATE_LIMIT),
        (r"deadlock|could not serialize|serialization failure", _T.TRANSIENT_DATABASE),
        (
            r"connection (reset|refused|aborted)|timed? ?out|network is unreachable",
            _T.TRANSIENT_NETWORK,
        ),
        (r"service unavailable|bad gateway|gateway timeout", _T.EXTERNAL_SERVICE_UNAVAILABLE),
        (
            r"unauthori[sz]ed|authentication failed|invalid (api )?key|invalid token",
            _T.PERMANENT_AUTHENTICATION,
        ),
        (r"permission denied|access denied|forbidden", _T.CONFIGURATION_PERMISSIONS),
        (r"environment variable|not configured|missing setting", _T.CONFIGURATION_MISSING_ENV),
        (r"not found|does not exist|no such", _T.PERMANENT_NOT_FOUND),
    )
]


def classify(exc: BaseException) -> Classification:
    """The classification of ``exc`` (module docstring: type beats pattern)."""
    chain = _cause_chain(exc)
    for link in chain:
        found = _by_type(link)
        if found is not None:
            return found
    for link in chain:
        failure = _by_message(link)
        if failure is not None:
            return Classification.of(failure, MESSAGE_PATTERN)
    return UNCLASSIFIED


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__
    return chain


def _by_type(exc: BaseException) -> Classification | None:
    declared = getattr(exc, "failure_type", None) or getattr(exc, "failure_class", None)
    if declared is not None:
        try:
            return Classification.of(failure_type(str(declared)), DECLARED)
        except ValueError:
            return None
    if isinstance(exc, BaseExceptionGroup):
        return _classify_group(exc)
    if isinstance(exc, ImportError):
        # A module or name that is not there: the installed dependencies do not fit the code.
        return Classification.of(
            _T.CONFIGURATION_MISSING_ENV, KNOWN_TYPE, Remediation.UPDATE_DEPENDENCIES
        )
    for classifier in (_classify_database, _classify_http, _classify_kafka, _classify_builtin):
        found = classifier(exc)
        if found is not None:
            return Classification.of(found, KNOWN_TYPE)
    return None


def _by_message(exc: BaseException) -> FailureType | None:
    message = str(exc)
    for pattern, failure in _PATTERNS:
        if pattern.search(message):
            return failure
    return None


def _classify_group(group: BaseExceptionGroup[BaseException]) -> Classification:
    # A group is as bad as its worst member: one permanent failure makes retrying pointless.
    found = [classify(inner) for inner in group.exceptions]
    permanent = [c for c in found if not c.retryable]
    if permanent:
        return permanent[0]
    return found[0] if found else UNCLASSIFIED


def _sqlstate(exc: BaseException) -> str | None:
    # asyncpg errors carry ``sqlstate``; SQLAlchemy wraps them (``orig``, then ``__cause__``).
    for candidate in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        for attr in ("sqlstate", "pgcode"):
            code = getattr(candidate, attr, None)
            if isinstance(code, str) and len(code) == 5:
                return code
    return None


def _classify_database(exc: BaseException) -> FailureType | None:
    code = _sqlstate(exc)
    if code is not None:
        exact = _SQLSTATE_EXACT.get(code)
        if exact is not None:
            return exact
        by_class = _SQLSTATE_CLASS.get(code[:2])
        if by_class is not None:
            return by_class
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return _T.TRANSIENT_DATABASE
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return _T.TRANSIENT_DATABASE  # pool exhausted, connection dropped
    if isinstance(exc, sa_exc.DisconnectionError):
        return _T.TRANSIENT_DATABASE
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return _T.PERMANENT_INVALID_INPUT
    if isinstance(exc, sa_exc.ProgrammingError | sa_exc.ArgumentError):
        return _T.CONFIGURATION_MISSING_ENV
    return None


def _classify_http(exc: BaseException) -> FailureType | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return _http_status(exc.response.status_code)
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return _T.TRANSIENT_NETWORK
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return _T.CONFIGURATION_MISSING_ENV
    return None


def _http_status(status: int) -> FailureType:
    if status == 429:
        return _T.TRANSIENT_RATE_LIMIT
    if status in (401, 403):
        return _T.PERMANENT_AUTHENTICATION
    if status in (404, 410):
        return _T.PERMANENT_NOT_FOUND
    if status in (408, 425):
        return _T.TRANSIENT_NETWORK
    if 400 <= status < 500:
        return _T.PERMANENT_INVALID_INPUT
    if status in (502, 503, 504):
        return _T.EXTERNAL_SERVICE_UNAVAILABLE  # the provider is down or unreachable
    return _T.EXTERNAL_API_ERROR  # it answered, with an error of its own (500, ...)


def _classify_kafka(exc: BaseException) -> FailureType | None:
    if not isinstance(exc, kafka_errors.KafkaError):
        return None
    if isinstance(exc, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError):
        return _T.TRANSIENT_NETWORK
    if getattr(exc, "retriable", False) or getattr(exc, "invalid_metadata", False):
        return _T.TRANSIENT_NETWORK
    if isinstance(
        exc, kafka_errors.TopicAuthorizationFailedError | kafka_errors.GroupAuthorizationFailedError
    ):
        return _T.CONFIGURATION_PERMISSIONS
    return None


def _classify_builtin(exc: BaseException) -> FailureType | None:
    # Order matters: TimeoutError, ConnectionError and PermissionError are OSErrors;
    # ValidationError is a ValueError.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError | socket.gaierror):
        return _T.TRANSIENT_NETWORK
    if isinstance(exc, PermissionError):
        return _T.CONFIGURATION_PERMISSIONS
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _T.SYSTEM_DISK_FULL
    if isinstance(exc, MemoryError):
        return _T.SYSTEM_OUT_OF_MEMORY
    if isinstance(exc, pydantic.ValidationError | json.JSONDecodeError | UnicodeDecodeError):
        return _T.PERMANENT_INVALID_INPUT
    if isinstance(exc, ValueError):
        return _T.PERMANENT_INVALID_INPUT
    if isinstance(exc, NotImplementedError):
        return _T.CONFIGURATION_MISSING_ENV
    return None


def worth_retrying(exc: BaseException) -> bool:
    """Whether the retry loop should try ``exc``'s operation again: its type is retryable.

    ``Exception``, not ``BaseException``: a cancelled task must stop, never be retried.
    """
    return isinstance(exc, Exception) and is_retryable(classify(exc).type)


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
