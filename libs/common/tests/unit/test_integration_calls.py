"""The third-party call log (``waybill.common.observability.integrations``): what a call counts
as, and the last error kept as ONE label set per integration."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from waybill.common.observability.integrations import (
    exception_error_class,
    http_error_class,
    integration_call,
    record_call,
)

SERVICE = "unit"


def fresh() -> str:
    return f"it_{uuid.uuid4().hex[:8]}"


def calls(integration: str, outcome: str) -> float:
    found = REGISTRY.get_sample_value(
        "waybill_integration_calls_total",
        {"service": SERVICE, "integration": integration, "outcome": outcome},
    )
    return found or 0.0


def last_error_classes(integration: str) -> dict[str, float]:
    for family in REGISTRY.collect():
        if family.name == "waybill_integration_last_error_info":
            return {
                s.labels["error_class"]: s.value
                for s in family.samples
                if s.labels["service"] == SERVICE and s.labels["integration"] == integration
            }
    return {}


def test_the_last_error_is_one_label_set_per_integration_whatever_failed_before():
    name = fresh()
    record_call(SERVICE, name, "timeout", 0.2)
    record_call(SERVICE, name, "http_5xx", 0.1)
    record_call(SERVICE, name, "ok", 0.01)  # a success keeps the last error
    assert last_error_classes(name) == {"http_5xx": 1.0}
    at = REGISTRY.get_sample_value(
        "waybill_integration_last_error_timestamp_seconds",
        {"service": SERVICE, "integration": name},
    )
    assert at is not None and at > 1.7e9
    count = REGISTRY.get_sample_value(
        "waybill_integration_call_duration_seconds_count",
        {"service": SERVICE, "integration": name},
    )
    assert count == 3


def test_an_error_class_that_is_no_short_token_is_counted_as_other():
    name = fresh()
    record_call(SERVICE, name, "HTTP 500: {'secret': 'sk_live_1'}", 0.1)
    assert calls(name, "other") == 1
    assert last_error_classes(name) == {"other": 1.0}


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "ok"), (302, "ok"), (400, "http_4xx"), (429, "rate_limited"), (503, "http_5xx")],
)
def test_an_answer_is_classified_by_its_status(status, expected):
    assert http_error_class(status) == expected


def test_an_expected_status_is_a_successful_call():
    assert http_error_class(402, expected=(402,)) == "ok"


class Wrapped(Exception):
    """A service's own error raised from the transport's."""


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "connect"),
        (ConnectionRefusedError(), "connect"),
        (httpx.RemoteProtocolError("eof"), "network"),
        (ValueError("bad"), "error"),
    ],
)
def test_an_exception_is_classified_by_its_type(exc, expected):
    assert exception_error_class(exc) == expected


async def test_a_call_that_raises_counts_as_the_error_it_was_raised_from():
    name = fresh()
    with pytest.raises(Wrapped):
        async with integration_call(SERVICE, name):
            try:
                raise httpx.ReadTimeout("slow")
            except httpx.ReadTimeout as exc:
                raise Wrapped("timeout") from exc
    assert calls(name, "timeout") == 1
    async with integration_call(SERVICE, name) as call:
        call.answered(503)
    assert calls(name, "http_5xx") == 1
    async with integration_call(SERVICE, name):
        pass
    assert calls(name, "ok") == 1
    assert last_error_classes(name) == {"http_5xx": 1.0}


async def test_a_cancelled_call_is_not_counted():
    name = fresh()

    async def hang() -> None:
        async with integration_call(SERVICE, name):
            await asyncio.sleep(3600)

    task = asyncio.create_task(hang())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (
        REGISTRY.get_sample_value(
            "waybill_integration_call_duration_seconds_count",
            {"service": SERVICE, "integration": name},
        )
        is None
    )
