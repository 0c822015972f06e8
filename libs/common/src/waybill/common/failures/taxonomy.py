"""The failure taxonomy: every exception a consumer meets gets one type, and the type decides.

The 15 types and 8 remediations are those of the source requirements (``notes/seeds.md``);
``TAXONOMY`` is their table, the one place that says which types are retried and what an
operator usually does about each.

Retried: the three ``transient_*`` types, ``external_service_unavailable``,
``external_api_error``, ``system_out_of_memory``, ``system_cpu_overload`` and ``unknown``.
"Bounded" in the source table holds for every retried type here: the retry budget
(``RetryPolicy.attempts``) ends every loop, then the record is dead-lettered. ``unknown`` is
retried on purpose: an error nobody classified is as likely a blip as a bug, and the budget
bounds the cost of guessing wrong. Everything else (permanent input / not found /
authentication, configuration, disk full, business rule) is dead-lettered at once: retrying
cannot change the answer.

A ``Classification`` is a type with a confidence (how sure the classifier is: a declared type
1.0, a known library exception type 0.9, a message pattern 0.6, nothing at all 0.3) and a
remediation (the type's usual one unless the classifier knows better).

This module imports nothing but the standard library, so a domain module can name its failure
type without dragging a database driver, an HTTP client or a Kafka client into a pure rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class FailureType(StrEnum):
    TRANSIENT_NETWORK = "transient_network"
    TRANSIENT_DATABASE = "transient_database"
    TRANSIENT_RATE_LIMIT = "transient_rate_limit"
    PERMANENT_INVALID_INPUT = "permanent_invalid_input"
    PERMANENT_NOT_FOUND = "permanent_not_found"
    PERMANENT_AUTHENTICATION = "permanent_authentication"
    CONFIGURATION_MISSING_ENV = "configuration_missing_env"
    CONFIGURATION_PERMISSIONS = "configuration_permissions"
    EXTERNAL_SERVICE_UNAVAILABLE = "external_service_unavailable"
    EXTERNAL_API_ERROR = "external_api_error"
    SYSTEM_OUT_OF_MEMORY = "system_out_of_memory"
    SYSTEM_DISK_FULL = "system_disk_full"
    SYSTEM_CPU_OVERLOAD = "system_cpu_overload"
    BUSINESS_LOGIC_VIOLATION = "business_logic_violation"
    UNKNOWN = "unknown"


class Remediation(StrEnum):
    RETRY_WITH_BACKOFF = "retry_with_backoff"
    RETRY_IMMEDIATELY = "retry_immediately"  # the cause was already fixed
    MANUAL_INVESTIGATION = "manual_investigation"
    FIX_CONFIGURATION = "fix_configuration"
    CONTACT_EXTERNAL_SERVICE = "contact_external_service"
    SCALE_RESOURCES = "scale_resources"
    ESCALATE_TO_ADMIN = "escalate_to_admin"
    UPDATE_DEPENDENCIES = "update_dependencies"  # a library or API version caused it


@dataclass(frozen=True)
class Rule:
    """What the taxonomy says about one type."""

    retried: bool
    remediation: Remediation


_R = Remediation
TAXONOMY: Final[Mapping[FailureType, Rule]] = MappingProxyType(
    {
        FailureType.TRANSIENT_NETWORK: Rule(True, _R.RETRY_WITH_BACKOFF),
        FailureType.TRANSIENT_DATABASE: Rule(True, _R.RETRY_WITH_BACKOFF),
        FailureType.TRANSIENT_RATE_LIMIT: Rule(True, _R.RETRY_WITH_BACKOFF),
        FailureType.PERMANENT_INVALID_INPUT: Rule(False, _R.MANUAL_INVESTIGATION),
        FailureType.PERMANENT_NOT_FOUND: Rule(False, _R.MANUAL_INVESTIGATION),
        FailureType.PERMANENT_AUTHENTICATION: Rule(False, _R.FIX_CONFIGURATION),
        FailureType.CONFIGURATION_MISSING_ENV: Rule(False, _R.FIX_CONFIGURATION),
        FailureType.CONFIGURATION_PERMISSIONS: Rule(False, _R.FIX_CONFIGURATION),
        FailureType.EXTERNAL_SERVICE_UNAVAILABLE: Rule(True, _R.CONTACT_EXTERNAL_SERVICE),
        FailureType.EXTERNAL_API_ERROR: Rule(True, _R.CONTACT_EXTERNAL_SERVICE),
        FailureType.SYSTEM_OUT_OF_MEMORY: Rule(True, _R.SCALE_RESOURCES),
        FailureType.SYSTEM_DISK_FULL: Rule(False, _R.SCALE_RESOURCES),
        FailureType.SYSTEM_CPU_OVERLOAD: Rule(True, _R.SCALE_RESOURCES),
        FailureType.BUSINESS_LOGIC_VIOLATION: Rule(False, _R.ESCALATE_TO_ADMIN),
        FailureType.UNKNOWN: Rule(True, _R.MANUAL_INVESTIGATION),
    }
)

# How sure a classification is, by what decided it (``classify``: type beats pattern).
DECLARED: Final = 1.0  # the exception names its type (``failure_type`` / ``failure_class``)
KNOWN_TYPE: Final = 0.9  # a library exception type we map (SQLSTATE, HTTP status, ...)
MESSAGE_PATTERN: Final = 0.6  # only the message said it
NOTHING: Final = 0.3  # ``unknown``

# The names of the taxonomy before it had 15 types, still accepted where a type is declared
# as a string (one release; ADR 0016).
LEGACY_NAMES: Final[Mapping[str, FailureType]] = MappingProxyType(
    {
        "permanent_auth": FailureType.PERMANENT_AUTHENTICATION,
        "configuration": FailureType.CONFIGURATION_MISSING_ENV,
        "external_service": FailureType.EXTERNAL_SERVICE_UNAVAILABLE,
        "business_rule": FailureType.BUSINESS_LOGIC_VIOLATION,
    }
)


def failure_type(name: str) -> FailureType:
    """The type called ``name`` (a current or legacy name); ValueError if there is none."""
    legacy = LEGACY_NAMES.get(name)
    return legacy if legacy is not None else FailureType(name)


def is_retryable(failure: FailureType) -> bool:
    """Whether another attempt may succeed (see the module docstring for ``unknown``)."""
    return TAXONOMY[failure].retried


def remediation_for(failure: FailureType) -> Remediation:
    """The usual remediation of ``failure``."""
    return TAXONOMY[failure].remediation


@dataclass(frozen=True)
class Classification:
    """A failure's type, how sure we are of it (0..1), and what to do about it."""

    type: FailureType
    confidence: float
    remediation: Remediation

    @classmethod
    def of(
        cls, failure: FailureType, confidence: float, remediation: Remediation | None = None
    ) -> Classification:
        """``failure`` with its usual remediation unless ``remediation`` says otherwise."""
        return cls(failure, confidence, remediation or remediation_for(failure))

    @property
    def retryable(self) -> bool:
        return is_retryable(self.type)

    @property
    def confidence_text(self) -> str:
        """``0.00``..``1.00``, as dead-letter headers carry it."""
        return f"{self.confidence:.2f}"


UNCLASSIFIED: Final = Classification.of(FailureType.UNKNOWN, NOTHING)
