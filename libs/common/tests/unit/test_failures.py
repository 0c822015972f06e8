"""The failure taxonomy: every kind of exception lands in the class that decides its fate."""

from __future__ import annotations

import json
import subprocess
import sys

import asyncpg
import httpx
import pydantic
import pytest
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from waybill.common.failures import FailureClass, PermanentError, TransientError, is_retryable
from waybill.common.failures.classify import classify


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://provider.test/v1/payment_intents")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError("provider said no", request=request, response=response)


def _db_error(wrapper: type[sa_exc.DBAPIError], pg_error: Exception) -> sa_exc.DBAPIError:
    # What SQLAlchemy's asyncpg dialect raises: the driver error as ``orig`` and as the cause.
    err = wrapper("INSERT ...", {}, pg_error)
    err.__cause__ = pg_error
    return err


class _Model(pydantic.BaseModel):
    quantity: int


def _validation_error() -> pydantic.ValidationError:
    try:
        _Model.model_validate({"quantity": "many"})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


class _StockExhausted(Exception):
    failure_class = FailureClass.BUSINESS_RULE


class _DeclaredAsString(Exception):
    failure_class = "permanent_not_found"


CASES: list[tuple[str, BaseException, FailureClass]] = [
    ("connection refused", ConnectionRefusedError(), FailureClass.TRANSIENT_NETWORK),
    ("timeout", TimeoutError(), FailureClass.TRANSIENT_NETWORK),
    ("asyncio timeout", TimeoutError(), FailureClass.TRANSIENT_NETWORK),
    ("httpx connect", httpx.ConnectError("refused"), FailureClass.TRANSIENT_NETWORK),
    ("httpx read timeout", httpx.ReadTimeout("slow"), FailureClass.TRANSIENT_NETWORK),
    ("kafka connection", kafka_errors.KafkaConnectionError(), FailureClass.TRANSIENT_NETWORK),
    ("kafka timeout", kafka_errors.KafkaTimeoutError(), FailureClass.TRANSIENT_NETWORK),
    ("TransientError base", TransientError("blip"), FailureClass.TRANSIENT_NETWORK),
    (
        "deadlock",
        _db_error(sa_exc.DBAPIError, asyncpg.exceptions.DeadlockDetectedError("deadlock")),
        FailureClass.TRANSIENT_DATABASE,
    ),
    (
        "serialization failure",
        _db_error(sa_exc.DBAPIError, asyncpg.exceptions.SerializationError("retry")),
        FailureClass.TRANSIENT_DATABASE,
    ),
    (
        "admin shutdown",
        _db_error(sa_exc.OperationalError, asyncpg.exceptions.AdminShutdownError("bye")),
        FailureClass.TRANSIENT_DATABASE,
    ),
    ("pool timeout", sa_exc.TimeoutError("pool exhausted"), FailureClass.TRANSIENT_DATABASE),
    ("http 429", _http_error(429), FailureClass.TRANSIENT_RATE_LIMIT),
    (
        "unique violation",
        _db_error(sa_exc.IntegrityError, asyncpg.exceptions.UniqueViolationError("dup")),
        FailureClass.PERMANENT_INVALID_INPUT,
    ),
    ("pydantic validation", _validation_error(), FailureClass.PERMANENT_INVALID_INPUT),
    ("json decode", json.JSONDecodeError("bad", "x", 0), FailureClass.PERMANENT_INVALID_INPUT),
    ("value error", ValueError("negative quantity"), FailureClass.PERMANENT_INVALID_INPUT),
    ("http 422", _http_error(422), FailureClass.PERMANENT_INVALID_INPUT),
    ("PermanentError base", PermanentError("nope"), FailureClass.PERMANENT_INVALID_INPUT),
    ("http 404", _http_error(404), FailureClass.PERMANENT_NOT_FOUND),
    ("declared as string", _DeclaredAsString(), FailureClass.PERMANENT_NOT_FOUND),
    ("http 401", _http_error(401), FailureClass.PERMANENT_AUTH),
    ("http 403", _http_error(403), FailureClass.PERMANENT_AUTH),
    (
        "undefined table",
        _db_error(sa_exc.ProgrammingError, asyncpg.exceptions.UndefinedTableError("no table")),
        FailureClass.CONFIGURATION,
    ),
    ("missing module", ModuleNotFoundError("stripe"), FailureClass.CONFIGURATION),
    ("http 503", _http_error(503), FailureClass.EXTERNAL_SERVICE),
    ("http 500", _http_error(500), FailureClass.EXTERNAL_SERVICE),
    ("domain business rule", _StockExhausted(), FailureClass.BUSINESS_RULE),
    ("plain runtime error", RuntimeError("who knows"), FailureClass.UNKNOWN),
    ("key error", KeyError("x"), FailureClass.UNKNOWN),
]


@pytest.mark.parametrize(("exc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_exception_is_classified_into_its_failure_class(
    exc: BaseException, expected: FailureClass
) -> None:
    assert classify(exc) is expected


def test_every_failure_class_is_covered_by_a_case() -> None:
    assert {expected for _, _, expected in CASES} == set(FailureClass)


def test_an_opaque_wrapper_is_classified_by_its_cause() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as cause:
            raise RuntimeError("capture failed") from cause
    except RuntimeError as exc:
        assert classify(exc) is FailureClass.TRANSIENT_NETWORK


def test_a_declared_class_wins_over_the_builtin_type() -> None:
    class QuantityRule(ValueError):
        failure_class = FailureClass.BUSINESS_RULE

    assert classify(QuantityRule()) is FailureClass.BUSINESS_RULE


def test_an_exception_group_with_one_permanent_member_is_permanent() -> None:
    group = ExceptionGroup("many", [TimeoutError(), ValueError("bad")])
    assert classify(group) is FailureClass.PERMANENT_INVALID_INPUT


def test_transient_external_and_unknown_classes_are_retried_and_the_rest_are_not() -> None:
    retried = {c for c in FailureClass if is_retryable(c)}
    assert retried == {
        FailureClass.TRANSIENT_NETWORK,
        FailureClass.TRANSIENT_DATABASE,
        FailureClass.TRANSIENT_RATE_LIMIT,
        FailureClass.EXTERNAL_SERVICE,
        FailureClass.UNKNOWN,
    }


HEAVY_LIBRARIES = ("httpx", "aiokafka", "sqlalchemy", "asyncpg")


def imported_heavy_libraries(module: str) -> list[str]:
    """The heavy libraries a fresh interpreter has loaded after importing ``module``."""
    probe = (
        f"import sys, {module}; print(','.join(m for m in {HEAVY_LIBRARIES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return [name for name in done.stdout.strip().split(",") if name]


@pytest.mark.parametrize(
    "module",
    [
        "waybill.common.failures",  # what a domain module imports to declare its errors
        "waybill.common.backoff",  # a delay policy, for the supervisor, relay and queues
    ],
)
def test_declaring_a_failure_class_or_a_backoff_imports_no_client_library(module: str) -> None:
    assert imported_heavy_libraries(module) == []


def test_the_classifier_is_the_module_that_knows_the_client_libraries() -> None:
    # The probe can fail: classifying does load them.
    assert set(imported_heavy_libraries("waybill.common.failures.classify")) >= {
        "httpx",
        "aiokafka",
        "sqlalchemy",
    }
