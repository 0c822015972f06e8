"""The retry schedule and the signing secrets, as rules: the first attempt at once, one retry
per delay (capped, jittered, never earlier than a Retry-After within the cap); a rotated-out
secret signs until its grace ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from waybill.common.failures import FailureType, Remediation
from waybill.notifier.domain.endpoints import new_secret, signing_secrets, wants
from waybill.notifier.domain.schedule import (
    JITTER,
    MAX_DELAY_S,
    Schedule,
    counts_against_breaker,
    disables_endpoint,
    error_class,
    failure_of,
    parse_schedule,
)


def test_the_contract_schedule_is_five_retries_after_the_first_attempt() -> None:
    schedule = Schedule(parse_schedule("60,120,240,480,960"))

    assert schedule.max_attempts == 6
    for attempt, base in enumerate((60, 120, 240, 480, 960), start=1):
        delay = schedule.delay(attempt)
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


def test_each_delay_is_capped_at_an_hour_and_negative_ones_are_refused() -> None:
    assert parse_schedule("30,7200") == (30.0, MAX_DELAY_S)
    with pytest.raises(ValueError, match="negative"):
        parse_schedule("10,-1")


@pytest.mark.parametrize(("retry_after", "floor"), [(30.0, 30.0), (10_000.0, MAX_DELAY_S)])
def test_a_retry_after_is_honoured_within_the_cap(retry_after: float, floor: float) -> None:
    schedule = Schedule((1.0, 1.0))

    assert schedule.delay(1, retry_after) >= floor
    assert schedule.delay(1, retry_after) <= max(floor, 1.0 * (1 + JITTER))


def test_error_classes_of_answers_and_410_disables() -> None:
    assert error_class(200, None) is None
    assert error_class(404, None) == "http_4xx"
    assert error_class(503, None) == "http_5xx"
    assert error_class(None, "timeout") == "timeout"
    assert disables_endpoint(410) and not disables_endpoint(404)


def test_a_new_secret_is_a_standard_webhooks_key() -> None:
    secret = new_secret()

    assert secret.startswith("whsec_") and secret != new_secret()
    signed = Webhook(secret).sign("msg_1", datetime.now(UTC), '{"a":1}')
    assert signed.startswith("v1,")


def test_the_previous_secret_signs_only_during_its_grace() -> None:
    now = datetime.now(UTC)

    assert signing_secrets("new", "old", now + timedelta(hours=1), now) == ["new", "old"]
    assert signing_secrets("new", "old", now - timedelta(seconds=1), now) == ["new"]
    assert signing_secrets("new", None, None, now) == ["new"]


def test_an_endpoint_wants_its_types_or_every_type() -> None:
    assert wants(["order.paid"], "order.paid") and not wants(["order.paid"], "order.placed")
    assert wants(["*"], "shipment.delivered")


@pytest.mark.parametrize(
    ("status_code", "failure", "counts"),
    [
        (None, "connect", True),
        (None, "timeout", True),
        (None, "dns", True),
        (503, None, True),
        (500, None, True),
        (404, None, False),  # the receiver answered: its host is up
        (429, None, False),
        (200, "too_large", False),
        (None, "unsafe_address", False),  # our refusal, not the host's failure
    ],
)
def test_the_breaker_counts_no_answer_and_5xx_only(status_code, failure, counts):
    assert counts_against_breaker(status_code, failure) is counts


@pytest.mark.parametrize(
    ("error", "status_code", "expected"),
    [
        ("timeout", None, FailureType.TRANSIENT_NETWORK),
        ("connect", None, FailureType.TRANSIENT_NETWORK),
        ("unsafe_address", None, FailureType.CONFIGURATION_MISSING_ENV),
        ("disabled", None, FailureType.CONFIGURATION_MISSING_ENV),
        ("http_4xx", 429, FailureType.TRANSIENT_RATE_LIMIT),
        ("http_4xx", 401, FailureType.PERMANENT_AUTHENTICATION),
        ("http_4xx", 410, FailureType.PERMANENT_NOT_FOUND),
        ("http_4xx", 422, FailureType.PERMANENT_INVALID_INPUT),
        ("http_5xx", 500, FailureType.EXTERNAL_SERVICE_UNAVAILABLE),
        ("too_large", 200, FailureType.EXTERNAL_SERVICE_UNAVAILABLE),
    ],
)
def test_a_failed_message_gets_the_taxonomys_type(error, status_code, expected):
    failure = failure_of(error, status_code)
    assert failure.type is expected
    assert failure.confidence == 0.9  # as telling as a known exception type


def test_a_failed_message_gets_its_types_remediation():
    assert failure_of("http_5xx", 503).remediation is Remediation.CONTACT_EXTERNAL_SERVICE
    assert failure_of("disabled", None).remediation is Remediation.FIX_CONFIGURATION
