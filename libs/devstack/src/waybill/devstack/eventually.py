"""Wait in a test until a condition holds: the one polling loop of the test support.

A test of an asynchronous system (a saga, a relay, a restarted broker) asserts on something
that becomes true *eventually*. Every test used to write its own deadline-and-sleep loop, each
with its own interval and its own (often missing) message on timeout. ``eventually`` asks
``probe`` until ``until(value)`` holds, returns that value, and on timeout fails with the last
value seen (or the last exception, for probes that may raise while a process restarts).

The retrying itself is tenacity's (already in the runtime kit): a fixed interval, a stop after
the timeout with one last attempt at the deadline. ``eventually_sync`` is the same for code
that cannot await (sync fixtures, tests that drive the ``waybill`` CLI).
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")

# The last value goes into the failure message: enough of it to read, never a whole topic.
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 200
_short.maxlist = _short.maxdict = 10

Probe = Callable[[], T | Awaitable[T]]


def _truthy(value: object) -> bool:
    return bool(value)


def _policy(
    until: Callable[[Any], bool],
    timeout_s: float,
    interval_s: float,
    ignoring: tuple[type[BaseException], ...],
) -> dict[str, Any]:
    retry = retry_if_result(lambda value: not until(value))
    if ignoring:
        retry = retry | retry_if_exception_type(ignoring)  # type: ignore[assignment]
    return {
        "stop": stop_after_delay(timeout_s),
        "wait": wait_fixed(interval_s),
        "retry": retry,
        "reraise": False,
    }


def _timed_out(error: RetryError, what: str, timeout_s: float) -> AssertionError:
    attempt = error.last_attempt
    if attempt.failed:
        last = f"last error: {attempt.exception()!r}"
    else:
        last = f"last value: {_short.repr(attempt.result())}"
    return AssertionError(
        f"{what} did not happen within {timeout_s:g}s ({attempt.attempt_number} attempts); {last}"
    )


async def eventually(
    probe: Probe[T],
    *,
    until: Callable[[T], bool] = _truthy,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
    what: str = "the condition",
) -> T:
    """Call ``probe`` (sync or async) until ``until(value)`` (default: a truthy value); return
    that value. Exceptions in ``ignoring`` count as "not yet"; any other propagates at once.
    On timeout: ``AssertionError`` naming ``what`` and the last value or error seen."""

    async def attempt() -> T:
        value = probe()
        if inspect.isawaitable(value):
            return await cast(Awaitable[T], value)
        return value

    retrying = AsyncRetrying(**_policy(until, timeout_s, interval_s, ignoring))
    try:
        return await retrying(attempt)
    except RetryError as error:
        raise _timed_out(error, what, timeout_s) from None


def eventually_sync(
    probe: Callable[[], T],
    *,
    until: Callable[[T], bool] = _truthy,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
    what: str = "the condition",
) -> T:
    """``eventually`` for code that cannot await: the same policy, blocking sleeps."""
    retrying = Retrying(**_policy(until, timeout_s, interval_s, ignoring))
    try:
        return retrying(probe)
    except RetryError as error:
        raise _timed_out(error, what, timeout_s) from None
