"""The failure taxonomy: every kind of exception lands in the type that decides its fate, with a
confidence that says what decided it (type beats pattern) and the type's remediation."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import asyncpg
import httpx
import pydantic
import pytest
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from waybill.common.failures import (
    TAXONOMY,
    DomainError,
    FailureType,
    PermanentError,
    Remediation,
    TransientError,
    is_retryable,
    remediation_for,
)
from waybill.common.failures.classify import classify

T = FailureType


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


class _StockExhausted(DomainError):
    code = "STOCK_EXHAUSTED"


class _DeclaredAsString(Exception):
    failure_type = "permanent_not_found"


class _DeclaredWithTheOldName(Exception):
    failure_class = "permanent_auth"


class _Overloaded(TransientError):
    failure_type = FailureType.SYSTEM_CPU_OVERLOAD


def _pg(sqlstate: str) -> asyncpg.PostgresError:
    err = asyncpg.PostgresError("server said no")
    err.sqlstate = sqlstate  # type: ignore[attr-defined]
    return err


# (id, exception, type, confidence): at least one per type.
CASES: list[tuple[str, BaseException, FailureType, float]] = [
    ("connection refused", ConnectionRefusedError(), T.TRANSIENT_NETWORK, 0.9),
    ("timeout", TimeoutError(), T.TRANSIENT_NETWORK, 0.9),
    ("httpx connect", httpx.ConnectError("refused"), T.TRANSIENT_NETWORK, 0.9),
    ("httpx read timeout", httpx.ReadTimeout("slow"), T.TRANSIENT_NETWORK, 0.9),
    ("kafka connection", kafka_errors.KafkaConnectionError(), T.TRANSIENT_NETWORK, 0.9),
    ("kafka timeout", kafka_errors.KafkaTimeoutError(), T.TRANSIENT_NETWORK, 0.9),
    ("TransientError base", TransientError("blip"), T.TRANSIENT_NETWORK, 1.0),
    (
        "message: connection reset",
        RuntimeError("connection reset by peer"),
        T.TRANSIENT_NETWORK,
        0.6,
    ),
    ("serialization failure", _pg("40001"), T.TRANSIENT_DATABASE, 0.9),
    (
        "sqlalchemy operational",
        _db_error(sa_exc.OperationalError, asyncpg.PostgresError("gone")),
        T.TRANSIENT_DATABASE,
        0.9,
    ),
    ("lock not available", _pg("55P03"), T.TRANSIENT_DATABASE, 0.9),
    ("pool timeout", sa_exc.TimeoutError("pool exhausted"), T.TRANSIENT_DATABASE, 0.9),
    ("message: deadlock", RuntimeError("deadlock detected"), T.TRANSIENT_DATABASE, 0.6),
    ("http 429", _http_error(429), T.TRANSIENT_RATE_LIMIT, 0.9),
    ("message: rate limit", RuntimeError("rate limit exceeded"), T.TRANSIENT_RATE_LIMIT, 0.6),
    (
        "integrity error",
        _db_error(sa_exc.IntegrityError, asyncpg.PostgresError("dup")),
        T.PERMANENT_INVALID_INPUT,
        0.9,
    ),
    ("pydantic validation", _validation_error(), T.PERMANENT_INVALID_INPUT, 0.9),
    ("json decode", json.JSONDecodeError("bad", "x", 0), T.PERMANENT_INVALID_INPUT, 0.9),
    ("value error", ValueError("negative quantity"), T.PERMANENT_INVALID_INPUT, 0.9),
    ("http 422", _http_error(422), T.PERMANENT_INVALID_INPUT, 0.9),
    ("PermanentError base", PermanentError("nope"), T.PERMANENT_INVALID_INPUT, 1.0),
    ("http 404", _http_error(404), T.PERMANENT_NOT_FOUND, 0.9),
    ("declared as string", _DeclaredAsString(), T.PERMANENT_NOT_FOUND, 1.0),
    ("message: not found", RuntimeError("payment pay_1 not found"), T.PERMANENT_NOT_FOUND, 0.6),
    ("http 401", _http_error(401), T.PERMANENT_AUTHENTICATION, 0.9),
    ("http 403", _http_error(403), T.PERMANENT_AUTHENTICATION, 0.9),
    ("invalid password", _pg("28P01"), T.PERMANENT_AUTHENTICATION, 0.9),
    ("declared, old name", _DeclaredWithTheOldName(), T.PERMANENT_AUTHENTICATION, 1.0),
    ("missing table", _pg("42P01"), T.CONFIGURATION_MISSING_ENV, 0.9),
    ("missing module", ModuleNotFoundError("stripe"), T.CONFIGURATION_MISSING_ENV, 0.9),
    (
        "message: env",
        RuntimeError("environment variable WAYBILL_X is not set"),
        T.CONFIGURATION_MISSING_ENV,
        0.6,
    ),
    ("permission error", PermissionError("/var/lib/x"), T.CONFIGURATION_PERMISSIONS, 0.9),
    ("insufficient privilege", _pg("42501"), T.CONFIGURATION_PERMISSIONS, 0.9),
    (
        "kafka topic authorization",
        kafka_errors.TopicAuthorizationFailedError(),
        T.CONFIGURATION_PERMISSIONS,
        0.9,
    ),
    ("http 503", _http_error(503), T.EXTERNAL_SERVICE_UNAVAILABLE, 0.9),
    ("http 502", _http_error(502), T.EXTERNAL_SERVICE_UNAVAILABLE, 0.9),
    ("http 500", _http_error(500), T.EXTERNAL_API_ERROR, 0.9),
    ("memory error", MemoryError(), T.SYSTEM_OUT_OF_MEMORY, 0.9),
    ("database out of memory", _pg("53200"), T.SYSTEM_OUT_OF_MEMORY, 0.9),
    ("no space left", OSError(errno.ENOSPC, "No space left on device"), T.SYSTEM_DISK_FULL, 0.9),
    ("database disk full", _pg("53100"), T.SYSTEM_DISK_FULL, 0.9),
    ("declared overload", _Overloaded("shed"), T.SYSTEM_CPU_OVERLOAD, 1.0),
    ("message: overloaded", RuntimeError("worker overloaded"), T.SYSTEM_CPU_OVERLOAD, 0.6),
    ("domain error default", _StockExhausted("sku-1 is gone"), T.BUSINESS_LOGIC_VIOLATION, 1.0),
    ("plain runtime error", RuntimeError("who knows"), T.UNKNOWN, 0.3),
    ("key error", KeyError("x"), T.UNKNOWN, 0.3),
]


@pytest.mark.parametrize(
    ("exc", "expected", "confidence"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_exception_is_classified_into_its_failure_type_with_a_confidence(
    exc: BaseException, expected: FailureType, confidence: float
) -> None:
    found = classify(exc)
    assert (found.type, found.confidence) == (expected, confidence)


def test_every_failure_type_is_covered_by_a_case() -> None:
    assert {expected for _, _, expected, _ in CASES} == set(FailureType)


def test_the_exception_type_beats_the_message_pattern() -> None:
    # The message says "connection refused", the type says invalid input: the type wins.
    found = classify(ValueError("connection refused while parsing"))
    assert (found.type, found.confidence) == (T.PERMANENT_INVALID_INPUT, 0.9)


def test_a_declared_type_beats_the_library_type_and_the_message() -> None:
    class QuantityRule(ValueError):
        failure_type = FailureType.BUSINESS_LOGIC_VIOLATION

    found = classify(QuantityRule("connection refused"))
    assert (found.type, found.confidence) == (T.BUSINESS_LOGIC_VIOLATION, 1.0)


def test_a_type_down_the_cause_chain_beats_a_pattern_on_the_wrapper() -> None:
    try:
        try:
            raise ValueError("negative quantity")
        except ValueError as cause:
            raise RuntimeError("provider timed out") from cause
    except RuntimeError as exc:
        found = classify(exc)
    assert (found.type, found.confidence) == (T.PERMANENT_INVALID_INPUT, 0.9)


def test_an_opaque_wrapper_is_classified_by_its_cause() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as cause:
            raise RuntimeError("capture failed") from cause
    except RuntimeError as exc:
        assert classify(exc).type is T.TRANSIENT_NETWORK


def test_an_exception_group_with_one_permanent_member_is_permanent() -> None:
    group = ExceptionGroup("many", [TimeoutError(), ValueError("bad")])
    assert classify(group).type is T.PERMANENT_INVALID_INPUT


# The source requirements' table (notes/seeds.md): retried or not, and the usual remediation.
SEEDS_TABLE = {
    T.TRANSIENT_NETWORK: (True, Remediation.RETRY_WITH_BACKOFF),
    T.TRANSIENT_DATABASE: (True, Remediation.RETRY_WITH_BACKOFF),
    T.TRANSIENT_RATE_LIMIT: (True, Remediation.RETRY_WITH_BACKOFF),
    T.PERMANENT_INVALID_INPUT: (False, Remediation.MANUAL_INVESTIGATION),
    T.PERMANENT_NOT_FOUND: (False, Remediation.MANUAL_INVESTIGATION),
    T.PERMANENT_AUTHENTICATION: (False, Remediation.FIX_CONFIGURATION),
    T.CONFIGURATION_MISSING_ENV: (False, Remediation.FIX_CONFIGURATION),
    T.CONFIGURATION_PERMISSIONS: (False, Remediation.FIX_CONFIGURATION),
    T.EXTERNAL_SERVICE_UNAVAILABLE: (True, Remediation.CONTACT_EXTERNAL_SERVICE),
    T.EXTERNAL_API_ERROR: (True, Remediation.CONTACT_EXTERNAL_SERVICE),
    T.SYSTEM_OUT_OF_MEMORY: (True, Remediation.SCALE_RESOURCES),
    T.SYSTEM_DISK_FULL: (False, Remediation.SCALE_RESOURCES),
    T.SYSTEM_CPU_OVERLOAD: (True, Remediation.SCALE_RESOURCES),
    T.BUSINESS_LOGIC_VIOLATION: (False, Remediation.ESCALATE_TO_ADMIN),
    T.UNKNOWN: (True, Remediation.MANUAL_INVESTIGATION),
}


def test_the_taxonomy_is_the_source_requirements_table() -> None:
    assert len(FailureType) == 15
    assert len(Remediation) == 8
    assert {t: (is_retryable(t), remediation_for(t)) for t in FailureType} == SEEDS_TABLE
    assert set(TAXONOMY) == set(FailureType)


def test_the_type_values_are_the_source_requirements_names() -> None:
    assert [t.value for t in FailureType] == [t.name.lower() for t in FailureType]
    assert {r.value for r in Remediation} >= {"retry_immediately", "update_dependencies"}


@pytest.mark.parametrize(
    ("exc", "expected", "_"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_classification_carries_its_types_remediation_unless_it_knows_better(
    exc: BaseException, expected: FailureType, _: float
) -> None:
    found = classify(exc)
    if isinstance(exc, ImportError):
        assert found.remediation is Remediation.UPDATE_DEPENDENCIES
    else:
        assert found.remediation is remediation_for(expected)


def test_what_was_retried_before_the_15_types_is_still_retried() -> None:
    # The old classes' members (ADR 0016): transient_*, external_service (5xx), unknown.
    for exc in (ConnectionRefusedError(), _pg("40001"), _http_error(429), _http_error(500)):
        assert is_retryable(classify(exc).type)
    for exc in (_http_error(503), RuntimeError("who knows"), _pg("53300")):
        assert is_retryable(classify(exc).type)


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
def test_declaring_a_failure_type_or_a_backoff_imports_no_client_library(module: str) -> None:
    assert imported_heavy_libraries(module) == []


def test_the_taxonomy_package_imports_only_the_standard_library() -> None:
    probe = (
        "import sys; before = set(sys.modules); import waybill.common.failures.fingerprint, "
        "waybill.common.failures; new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(','.join(sorted(new - set(sys.stdlib_module_names) - {'waybill'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_the_classifier_is_the_module_that_knows_the_client_libraries() -> None:
    # The probe can fail: classifying does load them.
    assert set(imported_heavy_libraries("waybill.common.failures.classify")) >= {
        "httpx",
        "aiokafka",
        "sqlalchemy",
    }
