"""The provider's circuit breaker: purgatory's asyncio breaker, with its state as a metric.

Why purgatory: it is asyncio-native (no thread locks around awaits), maintained, typed, and
publishes state changes to listeners, which is what the metric and the log need. aiobreaker is
unmaintained since 2021; circuitbreaker's decorator offers no state-change hook. Semantics:
``failure_threshold`` consecutive failures open the circuit; after ``reset_s`` the next call
half-opens it; that call's success closes it, its failure opens it again. (purgatory lets every
call through while half-open, not just one; the first failure re-opens it.)

Only what says "the provider is unwell" counts as a failure: network errors, timeouts, 5xx
(``TransientFailure`` raised inside the guarded block). Declines, 4xx and 429 are answers from
a healthy provider and are handled outside the block.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker

from waybill.common.observability.metrics import BREAKER_STATE

log = structlog.get_logger(__name__)

# BREAKER_STATE's documented encoding: 0 closed, 1 half-open, 2 open.
_GAUGE = {"closed": 0, "half-opened": 1, "opened": 2}

BreakerOpen = OpenedState


class ProviderBreaker:
    def __init__(
        self, dependency: str, *, failure_threshold: int, reset_s: float, service: str = "payments"
    ) -> None:
        self.dependency = dependency
        self.service = service
        self.state = "closed"
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold,
            default_ttl=reset_s,
            # A cancelled call (shutdown) says nothing about the provider's health.
            exclude=[asyncio.CancelledError],
        )
        self._factory.add_listener(self._on_event)
        BREAKER_STATE.labels(service, dependency).set(0)

    async def guard(self) -> AsyncCircuitBreaker:
        """``async with await breaker.guard():`` around one attempt; raises ``BreakerOpen``."""
        return await self._factory.get_breaker(self.dependency)

    def _on_event(self, name: str, event_type: str, event: Any) -> None:
        if event_type != "state_changed":
            return
        previous, self.state = self.state, str(event.state)
        BREAKER_STATE.labels(self.service, self.dependency).set(_GAUGE.get(self.state, 0))
        emit = log.warning if self.state == "opened" else log.info
        emit(
            "provider_breaker_state_changed",
            dependency=self.dependency,
            previous=previous,
            state=self.state,
        )
