"""The third-party API log as metrics: every outbound call to a provider (payment provider, SMS
provider, SMTP relay, webhook receivers) counted by outcome, timed, and its last error kept.

- ``waybill_integration_calls_total{service,integration,outcome}``: ``ok`` or an error class;
- ``waybill_integration_call_duration_seconds{service,integration}``: every call, failed too;
- ``waybill_integration_last_error_timestamp_seconds{service,integration}`` and
  ``waybill_integration_last_error_info{service,integration,error_class}`` (always 1): ONE label
  set per integration, the previous class is removed when another one happens, so the series
  count stays bounded whatever fails.

An error class is a short token from a fixed vocabulary (``timeout``, ``connect``, ``tls``,
``http_4xx``, ``http_5xx``, ``rate_limited``, ``smtp_4xx``, ``smtp_5xx``, ...), never a message:
response bodies, addresses and secrets stay out of labels (``_safe`` turns anything else into
``other``). Wrap a call with :func:`integration_call`; a place that already measured the call
(the notifier's webhook attempts) reports it with :func:`record_call`.

One process sees only its own calls: with several replicas of a service, each exposes its own
figures, and a Prometheus query sums them over the pods.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import perf_counter

import httpx
from prometheus_client import Counter, Gauge, Histogram

OK = "ok"
# Calls leave the process: from a loopback SMTP server in milliseconds to a slow webhook
# receiver at its timeout.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CALLS = Counter(
    "waybill_integration_calls_total",
    "Calls to third parties, by integration and outcome (ok or an error class).",
    ["service", "integration", "outcome"],
)
CALL_DURATION = Histogram(
    "waybill_integration_call_duration_seconds",
    "Time of one call to a third party (until its answer or failure).",
    ["service", "integration"],
    buckets=CALL_BUCKETS,
)
LAST_ERROR_AT = Gauge(
    "waybill_integration_last_error_timestamp_seconds",
    "Unix time of the last failed call to a third party.",
    ["service", "integration"],
)
LAST_ERROR = Gauge(
    "waybill_integration_last_error_info",
    "The last failed call's error class (value 1; one label set per integration).",
    ["service", "integration", "error_class"],
)

_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# The class each integration's last error carries now (to remove it when another comes).
_last_class: dict[tuple[str, str], str] = {}


def _safe(error_class: str) -> str:
    return error_class if _TOKEN.match(error_class) else "other"


def record_call(service: str, integration: str, outcome: str, duration_s: float) -> None:
    """Count one call that ended with ``outcome`` (``ok`` or an error class) after
    ``duration_s`` seconds."""
    outcome = _safe(outcome)
    CALLS.labels(service, integration, outcome).inc()
    CALL_DURATION.labels(service, integration).observe(max(duration_s, 0.0))
    if outcome == OK:
        return
    LAST_ERROR_AT.labels(service, integration).set(time.time())
    key = (service, integration)
    previous = _last_class.get(key)
    if previous != outcome:
        if previous is not None:
            LAST_ERROR.remove(service, integration, previous)
        _last_class[key] = outcome
    LAST_ERROR.labels(service, integration, outcome).set(1)


def http_error_class(status_code: int, *, expected: Iterable[int] = ()) -> str:
    """``ok`` for a 1xx-3xx answer or one of the ``expected`` statuses (a card decline is the
    provider doing its job), else ``rate_limited`` (429), ``http_4xx`` or ``http_5xx``."""
    if status_code < 400 or status_code in set(expected):
        return OK
    if status_code == 429:
        return "rate_limited"
    return "http_4xx" if status_code < 500 else "http_5xx"


def exception_error_class(exc: BaseException) -> str:
    """The error class of a call that raised: its own type or the cause it was raised from
    (a service's wrapper of an httpx error)."""
    seen: BaseException | None = exc
    while seen is not None:
        found = _class_of(seen)
        if found is not None:
            return found
        seen = seen.__cause__
    return "error"


def _class_of(exc: BaseException) -> str | None:
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, httpx.ConnectError | ConnectionError):
        return "connect"
    if isinstance(exc, httpx.TransportError | OSError):
        return "network"
    return None


@dataclass
class Call:
    """One call in progress: ``ok`` unless told otherwise or an exception leaves the block."""

    outcome: str = OK

    def answered(self, status_code: int, *, expected: Iterable[int] = ()) -> None:
        self.outcome = http_error_class(status_code, expected=expected)

    def failed(self, error_class: str) -> None:
        self.outcome = error_class


@asynccontextmanager
async def integration_call(service: str, integration: str) -> AsyncIterator[Call]:
    """Time and count the call made inside the block. An exception leaving it is classified
    (``exception_error_class``) unless the block already named the failure; a cancelled call
    (a shutdown) is not counted: it says nothing about the third party."""
    call = Call()
    started = perf_counter()
    try:
        yield call
    except Exception as exc:  # CancelledError is no Exception: it goes by uncounted
        if call.outcome == OK:
            call.outcome = exception_error_class(exc)
        record_call(service, integration, call.outcome, perf_counter() - started)
        raise
    record_call(service, integration, call.outcome, perf_counter() - started)
