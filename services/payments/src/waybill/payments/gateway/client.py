"""The provider gateway: one shared ``httpx.AsyncClient``, each call bounded by a timeout,
retried (tenacity, ``ProviderRetry``) and guarded by the provider's circuit breaker.

Every mutating call carries an ``Idempotency-Key`` chosen by the caller from the payment id,
so a retry here, a retry of the whole charge after a crash, or another replica's charge of the
same payment all reach the provider as one request: nothing is ever charged twice.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from waybill.common.backoff import Backoff, Jitter
from waybill.common.breaker import Breaker, BreakerOpen, CircuitBreakers
from waybill.common.observability.integrations import integration_call
from waybill.payments.gateway.errors import (
    CardDeclined,
    ProviderRejected,
    ProviderUnavailable,
    TransientFailure,
)
from waybill.payments.gateway.metrics import (
    PROVIDER_CALL_DURATION,
    PROVIDER_CALLS,
    PROVIDER_RETRIES,
)
from waybill.payments.gateway.models import Intent, ProviderRefund
from waybill.payments.gateway.retry import ProviderRetry
from waybill.payments.settings import PaymentsSettings

log = structlog.get_logger(__name__)
SERVICE = "payments"
INTEGRATION = "payment_provider"  # its name in the third-party calls view


class ProviderGateway:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        policy: ProviderRetry,
        breaker: Breaker,
        provider: str = "sandbox",
    ) -> None:
        self.client = client
        self.policy = policy
        self.breaker = breaker
        self.provider = provider
        self._auth = {"Authorization": f"Bearer {api_key}"}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def create_intent(
        self,
        *,
        idempotency_key: str,
        amount_cents: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
    ) -> Intent:
        """Charge: an intent ``succeeded`` or ``processing``; ``CardDeclined`` on a decline."""
        body = {
            "amount": amount_cents,
            "currency": currency.lower(),
            "payment_method": payment_method,
            "metadata": metadata,
        }
        response = await self._call(
            "create_intent", "POST", "/v1/payment_intents", json=body, key=idempotency_key
        )
        return Intent.model_validate(response.json())

    async def get_intent(self, intent_id: str) -> Intent:
        response = await self._call("get_intent", "GET", f"/v1/payment_intents/{intent_id}")
        return Intent.model_validate(response.json())

    async def create_refund(
        self, *, idempotency_key: str, intent_id: str, amount_cents: int | None
    ) -> ProviderRefund:
        body: dict[str, Any] = {"payment_intent": intent_id}
        if amount_cents is not None:
            body["amount"] = amount_cents
        response = await self._call(
            "create_refund", "POST", "/v1/refunds", json=body, key=idempotency_key
        )
        return ProviderRefund.model_validate(response.json())

    # --- one call: retries around attempts ---------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        headers = dict(self._auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception(
                lambda exc: isinstance(exc, TransientFailure) and self.policy.worth_waiting(exc)
            ),
            before_sleep=lambda state: self._on_retry(operation, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(operation, method, path, json, headers)
        except TransientFailure as exc:
            log.warning(
                "provider_call_failed",
                operation=operation,
                reason=exc.reason,
                attempts=self.policy.attempts,
                idempotency_key=key,
            )
            raise ProviderUnavailable(exc.reason, exc.retry_after_s) from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(exc, TransientFailure)
        return self.policy.wait_s(exc, state.attempt_number)

    def _on_retry(self, operation: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        reason = exc.reason if isinstance(exc, TransientFailure) else "unknown"
        PROVIDER_RETRIES.labels(SERVICE, self.provider, operation, reason).inc()
        log.info(
            "provider_call_retry_scheduled",
            operation=operation,
            reason=reason,
            attempt=state.attempt_number,
            retry_in_s=round(state.upcoming_sleep, 3),
        )

    async def _attempt(
        self,
        operation: str,
        method: str,
        path: str,
        json: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        started = perf_counter()
        outcome = "ok"
        try:
            try:
                async with await self.breaker.guard():
                    response = await self._send(method, path, json, headers)
            except BreakerOpen as exc:
                outcome = "breaker_open"
                raise ProviderUnavailable("breaker_open") from exc
            except TransientFailure as exc:
                outcome = exc.reason
                raise
            outcome = _check(response)
            return response
        finally:
            elapsed = perf_counter() - started
            PROVIDER_CALLS.labels(SERVICE, self.provider, operation, outcome).inc()
            PROVIDER_CALL_DURATION.labels(SERVICE, self.provider, operation, outcome).observe(
                elapsed
            )

    async def _send(
        self, method: str, path: str, json: dict[str, Any] | None, headers: dict[str, str]
    ) -> httpx.Response:
        """One HTTP exchange; the failures that count against the breaker become
        ``TransientFailure`` here, inside its guard. Each exchange is one call of the
        third-party log (``integrations``); a decline (402) is the provider answering."""
        async with integration_call(SERVICE, INTEGRATION) as call:
            try:
                response = await self.client.request(method, path, json=json, headers=headers)
            except httpx.TimeoutException as exc:
                raise TransientFailure("timeout") from exc
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise TransientFailure("network") from exc
            call.answered(response.status_code, expected=(402,))
        if response.status_code >= 500:
            raise TransientFailure("server_error")
        return response


def _check(response: httpx.Response) -> str:
    """The attempt's outcome label for a non-5xx answer; raises for anything but 2xx."""
    status = response.status_code
    if status < 400:
        return "ok"
    if status == 429:
        raise TransientFailure(
            "rate_limited", retry_after_s=_retry_after(response), rate_limited=True
        )
    error = _error_body(response)
    code = str(error.get("code") or error.get("type") or "unknown")
    message = str(error.get("message") or response.reason_phrase)
    if status == 402:
        intent = error.get("payment_intent")
        raise CardDeclined(code, message, Intent.model_validate(intent) if intent else None)
    raise ProviderRejected(status, code, message)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    # Retry-After may also be an HTTP date (RFC 9110); providers like ours send seconds.
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def build_gateway(settings: PaymentsSettings) -> ProviderGateway:
    """The gateway for the configured provider, with its own client and breaker."""
    client = httpx.AsyncClient(
        base_url=settings.provider_url,
        # No pool timeout: waiting for one of our own connections says nothing about the
        # provider, and must not trip its breaker; concurrency is bounded by the chargers.
        timeout=httpx.Timeout(settings.payments_provider_timeout_s, pool=None),
        limits=httpx.Limits(
            max_connections=settings.payments_charger_concurrency * 2,
            max_keepalive_connections=settings.payments_charger_concurrency * 2,
        ),
    )
    policy = ProviderRetry(
        attempts=settings.payments_retry_attempts,
        errors=Backoff(
            base_s=settings.payments_retry_base_s,
            max_s=settings.payments_retry_max_s,
            jitter=Jitter.EQUAL,
        ),
        rate_limits=Backoff(
            base_s=settings.payments_rate_limit_base_s,
            max_s=settings.payments_rate_limit_max_s,
            jitter=Jitter.EQUAL,
        ),
    )
    breakers = CircuitBreakers(
        service=SERVICE,
        failure_threshold=settings.payments_breaker_failure_threshold,
        reset_s=settings.payments_breaker_reset_s,
    )
    return ProviderGateway(
        client,
        api_key=settings.provider_api_key,
        policy=policy,
        breaker=breakers.get(settings.payments_provider_name),
        provider=settings.payments_provider_name,
    )
