"""Gateway retry, rate-limit and breaker decisions against a scripted provider (in-memory
HTTP transport: these are rules, the real sandbox is exercised by the integration tests)."""

from collections.abc import Callable

import httpx
import pytest

from waybill.common.backoff import Backoff, Jitter
from waybill.common.breaker import CircuitBreakers
from waybill.payments.gateway import (
    CardDeclined,
    ProviderGateway,
    ProviderRejected,
    ProviderRetry,
    ProviderUnavailable,
)
from waybill.payments.gateway.errors import TransientFailure

INTENT = {"id": "pi_1", "status": "succeeded", "amount": 100, "currency": "usd", "metadata": {}}
FAST = ProviderRetry(
    attempts=3,
    errors=Backoff(base_s=0.001, max_s=0.002, jitter=Jitter.EQUAL),
    rate_limits=Backoff(base_s=0.001, max_s=120, jitter=Jitter.EQUAL),
)


def scripted(responses: list[httpx.Response | Exception], seen: list[httpx.Request]):
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0) if len(responses) > 1 else responses[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handle


def gateway(
    handler: Callable[[httpx.Request], httpx.Response],
    policy: ProviderRetry = FAST,
    threshold: int = 5,
) -> ProviderGateway:
    client = httpx.AsyncClient(base_url="http://provider", transport=httpx.MockTransport(handler))
    breakers = CircuitBreakers(service="test", failure_threshold=threshold, reset_s=60)
    breaker = breakers.get(f"test-{id(handler)}")
    return ProviderGateway(client, api_key="sk", policy=policy, breaker=breaker)


async def charge(gw: ProviderGateway):
    return await gw.create_intent(
        idempotency_key="pay_1", amount_cents=100, currency="USD", payment_method="pm", metadata={}
    )


async def test_server_errors_are_retried_with_the_same_idempotency_key():
    seen: list[httpx.Request] = []
    gw = gateway(
        scripted([httpx.Response(500), httpx.Response(502), httpx.Response(200, json=INTENT)], seen)
    )
    intent = await charge(gw)
    assert intent.id == "pi_1"
    assert len(seen) == 3
    assert {r.headers["Idempotency-Key"] for r in seen} == {"pay_1"}


async def test_network_errors_exhaust_the_attempts_then_report_unavailable():
    seen: list[httpx.Request] = []
    gw = gateway(scripted([httpx.ConnectError("refused")], seen))
    with pytest.raises(ProviderUnavailable) as raised:
        await charge(gw)
    assert raised.value.reason == "network"
    assert len(seen) == 3


async def test_a_decline_is_never_retried():
    seen: list[httpx.Request] = []
    declined = {"error": {"type": "card_error", "code": "card_declined", "message": "no"}}
    gw = gateway(scripted([httpx.Response(402, json=declined)], seen))
    with pytest.raises(CardDeclined) as raised:
        await charge(gw)
    assert raised.value.code == "card_declined"
    assert len(seen) == 1


async def test_a_rejected_request_is_never_retried():
    seen: list[httpx.Request] = []
    invalid = {"error": {"type": "invalid_request_error", "code": "payment_method_invalid"}}
    gw = gateway(scripted([httpx.Response(400, json=invalid)], seen))
    with pytest.raises(ProviderRejected):
        await charge(gw)
    assert len(seen) == 1


async def test_a_rate_limited_call_waits_at_least_retry_after():
    seen: list[httpx.Request] = []
    limited = httpx.Response(429, headers={"Retry-After": "0.2"})
    gw = gateway(scripted([limited, httpx.Response(200, json=INTENT)], seen))
    await charge(gw)
    assert len(seen) == 2
    # The transport records no times; the policy is what spaces them:
    failure = TransientFailure("rate_limited", retry_after_s=0.2, rate_limited=True)
    assert all(0.2 <= FAST.wait_s(failure, n) <= 0.22 for n in range(1, 20))


def test_a_retry_after_beyond_the_cap_is_not_waited_out_in_process():
    policy = ProviderRetry(rate_limits=Backoff(base_s=5, max_s=10, jitter=Jitter.EQUAL))
    failure = TransientFailure("rate_limited", retry_after_s=30, rate_limited=True)
    assert not policy.worth_waiting(failure)
    assert policy.reschedule_s(0, 30) >= 30


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = ProviderRetry(errors=Backoff(base_s=1, max_s=30, jitter=Jitter.EQUAL))
    failure = TransientFailure("timeout")
    for retry, step in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 30)]:
        waits = [policy.wait_s(failure, retry) for _ in range(50)]
        assert all(step / 2 <= w <= step for w in waits)
        assert len(set(waits)) > 1  # jittered


async def test_the_breaker_opens_after_repeated_failures_and_then_fails_fast():
    seen: list[httpx.Request] = []
    gw = gateway(scripted([httpx.Response(503)], seen), ProviderRetry(attempts=1), threshold=3)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await charge(gw)
    assert gw.breaker.state == "opened"
    with pytest.raises(ProviderUnavailable) as raised:
        await charge(gw)
    assert raised.value.reason == "breaker_open"
    assert len(seen) == 3  # the open breaker did not call the provider


async def test_declines_do_not_open_the_breaker():
    seen: list[httpx.Request] = []
    declined = {"error": {"type": "card_error", "code": "card_declined", "message": "no"}}
    gw = gateway(scripted([httpx.Response(402, json=declined)], seen), threshold=2)
    for _ in range(5):
        with pytest.raises(CardDeclined):
            await charge(gw)
    assert gw.breaker.state == "closed"
