"""Circuit breakers: open after N failures, half-open after the reset, one per key, a metric."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import structlog
from prometheus_client import REGISTRY

from waybill.common.breaker import BreakerOpen, CircuitBreakers


class Unwell(Exception):
    pass


def gauge(service: str, key: str) -> float | None:
    return REGISTRY.get_sample_value(
        "waybill_circuit_breaker_state", {"service": service, "dependency": key}
    )


async def fail(breakers: CircuitBreakers, key: str) -> None:
    with pytest.raises(Unwell):
        async with await breakers.guard(key):
            raise Unwell(key)


async def succeed(breakers: CircuitBreakers, key: str) -> None:
    async with await breakers.guard(key):
        pass


def new_service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


async def test_a_breaker_opens_after_its_threshold_of_failures_and_then_fails_fast() -> None:
    breakers = CircuitBreakers(service=new_service(), failure_threshold=3, reset_s=60)
    for _ in range(2):
        await fail(breakers, "provider")
    assert breakers.get("provider").state == "closed"
    await fail(breakers, "provider")
    assert breakers.get("provider").state == "opened"
    called = False
    with pytest.raises(BreakerOpen):
        async with await breakers.guard("provider"):
            called = True
    assert not called


async def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breakers = CircuitBreakers(service=new_service(), failure_threshold=2, reset_s=60)
    for _ in range(3):
        await fail(breakers, "provider")
        await succeed(breakers, "provider")
    assert breakers.get("provider").state == "closed"


async def test_after_the_reset_one_trial_call_half_opens_and_its_outcome_decides() -> None:
    service = new_service()
    breakers = CircuitBreakers(service=service, failure_threshold=1, reset_s=0.05)
    with structlog.testing.capture_logs() as logs:
        await fail(breakers, "smtp")
        assert breakers.get("smtp").state == "opened"
        await _call_once_the_circuit_lets_it_through(breakers, "smtp", fails=True)
        assert breakers.get("smtp").state == "opened"  # the trial failed: open again
        await _call_once_the_circuit_lets_it_through(breakers, "smtp", fails=False)
    assert breakers.get("smtp").state == "closed"
    changes = [
        (e["previous"], e["state"], e["log_level"])
        for e in logs
        if e["event"] == "breaker_state_changed" and e["dependency"] == "smtp"
    ]
    assert changes == [
        ("closed", "opened", "warning"),
        ("opened", "half-opened", "info"),
        ("half-opened", "opened", "warning"),
        ("opened", "half-opened", "info"),
        ("half-opened", "closed", "info"),
    ]


async def test_keys_are_independent() -> None:
    breakers = CircuitBreakers(service=new_service(), failure_threshold=2, reset_s=60)
    for _ in range(2):
        await fail(breakers, "https://a.example/hook")
    await succeed(breakers, "https://b.example/hook")
    await fail(breakers, "https://b.example/hook")
    assert breakers.get("https://a.example/hook").state == "opened"
    assert breakers.get("https://b.example/hook").state == "closed"
    await succeed(breakers, "https://b.example/hook")


async def test_the_state_gauge_follows_each_key() -> None:
    service = new_service()
    breakers = CircuitBreakers(service=service, failure_threshold=1, reset_s=0.05)
    breakers.get("sms")
    breakers.get("email")
    assert gauge(service, "sms") == 0
    await fail(breakers, "sms")
    assert gauge(service, "sms") == 2
    assert gauge(service, "email") == 0
    await _call_once_the_circuit_lets_it_through(breakers, "sms", fails=False)
    assert gauge(service, "sms") == 0


async def test_a_cancelled_call_does_not_count_as_a_failure() -> None:
    breakers = CircuitBreakers(service=new_service(), failure_threshold=1, reset_s=60)
    with pytest.raises(asyncio.CancelledError):
        async with await breakers.guard("provider"):
            raise asyncio.CancelledError
    assert breakers.get("provider").state == "closed"


async def _call_once_the_circuit_lets_it_through(
    breakers: CircuitBreakers, key: str, *, fails: bool, timeout_s: float = 10
) -> None:
    """Wait (on the condition, not a fixed time) until the reset has passed, then call once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            guard = await breakers.guard(key)
            async with guard:
                if fails:
                    raise Unwell(key)
            return
        except BreakerOpen:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
        except Unwell:
            return
