"""Circuit breakers around outbound dependencies: one per dependency key, state as a metric.

A service holds one ``CircuitBreakers`` registry and asks it for the breaker of a key (the
payment provider, one webhook endpoint, the SMTP relay...): keys are independent, so one
failing webhook endpoint never stops deliveries to the others. Each breaker's state is the
``waybill_circuit_breaker_state`` gauge (``service``, ``dependency``: 0 closed, 1 half-open,
2 open) and every change is logged (``breaker_state_changed``, a warning when it opens).

Semantics: ``failure_threshold`` consecutive failures open the circuit; after ``reset_s`` the
next call half-opens it; that call's success closes it, its failure opens it again. Only
exceptions raised inside the guarded block count, so a caller keeps answers from a healthy
dependency (a decline, a 4xx) outside the block. A cancelled call (shutdown) never counts.

Engine: purgatory's asyncio breaker. It is asyncio-native (no thread locks around awaits),
maintained, typed, keyed by circuit name already, and publishes state changes to listeners,
which is what the metric and the log need. aiobreaker is unmaintained since 2021;
circuitbreaker's decorator offers no state-change hook. (purgatory lets every call through
while half-open, not just one; the first failure re-opens it.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker

from waybill.common.observability.metrics import BREAKER_STATE

log = structlog.get_logger(__name__)

CLOSED = "closed"
HALF_OPEN = "half-opened"
OPEN = "opened"
# BREAKER_STATE's documented encoding.
GAUGE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

BreakerOpen = OpenedState
"""Raised by ``guard()`` while the circuit is open: the dependency was not called."""


class Breaker:
    """The breaker of one dependency key (from ``CircuitBreakers.get``)."""

    def __init__(self, registry: CircuitBreakers, key: str) -> None:
        self._registry = registry
        self.key = key

    @property
    def state(self) -> str:
        """``closed``, ``half-opened`` or ``opened``."""
        return self._registry.state(self.key)

    async def guard(self) -> AsyncCircuitBreaker:
        """``async with await breaker.guard():`` around one call; raises ``BreakerOpen``."""
        return await self._registry.guard(self.key)


class CircuitBreakers:
    """The breakers of one service, one per dependency key, created on first use."""

    def __init__(
        self,
        *,
        service: str,
        failure_threshold: int,
        reset_s: float,
        ignore: Sequence[type[BaseException]] = (),
    ) -> None:
        self.service = service
        self.reset_s = reset_s  # how long an open circuit stays open before a probe
        self._states: dict[str, str] = {}
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold,
            default_ttl=reset_s,
            exclude=[asyncio.CancelledError, *ignore],
        )
        self._factory.add_listener(self._on_event)

    def get(self, key: str) -> Breaker:
        """The breaker of ``key``; its gauge reads closed from now on."""
        if key not in self._states:
            self._states[key] = CLOSED
            BREAKER_STATE.labels(self.service, key).set(GAUGE_VALUE[CLOSED])
        return Breaker(self, key)

    def state(self, key: str) -> str:
        return self._states.get(key, CLOSED)

    async def guard(self, key: str) -> AsyncCircuitBreaker:
        """``async with await breakers.guard(key):`` around one call to ``key``."""
        self.get(key)
        return await self._factory.get_breaker(key)

    def _on_event(self, key: str, event_type: str, event: Any) -> None:
        if event_type != "state_changed":
            return
        previous, state = self._states.get(key, CLOSED), str(event.state)
        self._states[key] = state
        BREAKER_STATE.labels(self.service, key).set(GAUGE_VALUE.get(state, 0))
        emit = log.warning if state == OPEN else log.info
        emit(
            "breaker_state_changed",
            service=self.service,
            dependency=key,
            previous=previous,
            state=state,
        )
