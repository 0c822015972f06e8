"""The failure taxonomy: every exception a consumer meets gets one class, and the class decides.

Retried (``is_retryable``): the three ``transient_*`` classes, ``external_service`` (a provider
that answered 5xx or timed out usually recovers) and ``unknown``. ``unknown`` is retried on
purpose: an error nobody classified is as likely a blip as a bug, and the retry budget
(``RetryPolicy.attempts``) bounds the cost of guessing wrong before the record is dead-lettered.
Everything else (permanent input/not-found/auth, configuration, business rule) is dead-lettered
at once: retrying cannot change the answer.

This module imports nothing but the standard library, so a domain module can name its failure
class without dragging a database driver, an HTTP client or a Kafka client into a pure rule.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    TRANSIENT_NETWORK = "transient_network"
    TRANSIENT_DATABASE = "transient_database"
    TRANSIENT_RATE_LIMIT = "transient_rate_limit"
    PERMANENT_INVALID_INPUT = "permanent_invalid_input"
    PERMANENT_NOT_FOUND = "permanent_not_found"
    PERMANENT_AUTH = "permanent_auth"
    CONFIGURATION = "configuration"
    EXTERNAL_SERVICE = "external_service"
    BUSINESS_RULE = "business_rule"
    UNKNOWN = "unknown"


_RETRYABLE = frozenset(
    {
        FailureClass.TRANSIENT_NETWORK,
        FailureClass.TRANSIENT_DATABASE,
        FailureClass.TRANSIENT_RATE_LIMIT,
        FailureClass.EXTERNAL_SERVICE,
        FailureClass.UNKNOWN,
    }
)


def is_retryable(failure: FailureClass) -> bool:
    """Whether another attempt may succeed (see the module docstring for ``unknown``)."""
    return failure in _RETRYABLE
