"""The failure taxonomy as the monitor reads it off a dead letter's headers.

``waybill.common.failures`` gains the 15 failure types and 8 remediations of the source
requirements (``notes/seeds.md``) in a parallel change (brief M1); a dead letter then carries
``dlq_failure_type``, ``dlq_confidence`` and ``dlq_remediation``. Records dead-lettered before
that carry only ``dlq_failure_class`` (the older, coarser classes): they are mapped here to the
nearest type, with confidence 0.5 and the type's usual remediation from the seeds table.
"""

from __future__ import annotations

from typing import Final

# Type -> its usual remediation (the seeds table), in the table's order.
USUAL_REMEDIATION: Final[dict[str, str]] = {
    "transient_network": "retry_with_backoff",
    "transient_database": "retry_with_backoff",
    "transient_rate_limit": "retry_with_backoff",
    "permanent_invalid_input": "manual_investigation",
    "permanent_not_found": "manual_investigation",
    "permanent_authentication": "fix_configuration",
    "configuration_missing_env": "fix_configuration",
    "configuration_permissions": "fix_configuration",
    "external_service_unavailable": "contact_external_service",
    "external_api_error": "contact_external_service",
    "system_out_of_memory": "scale_resources",
    "system_disk_full": "scale_resources",
    "system_cpu_overload": "scale_resources",
    "business_logic_violation": "escalate_to_admin",
    "unknown": "manual_investigation",
}
FAILURE_TYPES: Final = tuple(USUAL_REMEDIATION)
REMEDIATIONS: Final = (
    "retry_with_backoff",
    "retry_immediately",
    "manual_investigation",
    "fix_configuration",
    "contact_external_service",
    "scale_resources",
    "escalate_to_admin",
    "update_dependencies",
)
# The older classes (``FailureClass`` before the taxonomy) -> the nearest type.
_LEGACY: Final[dict[str, str]] = {
    "permanent_auth": "permanent_authentication",
    "configuration": "configuration_missing_env",
    "external_service": "external_service_unavailable",
    "business_rule": "business_logic_violation",
}
LEGACY_CONFIDENCE: Final = 0.5


def failure_type_of(value: str | None) -> str:
    """A header's failure type or older class as one of the 15 types (``unknown`` otherwise)."""
    if value is None:
        return "unknown"
    value = _LEGACY.get(value, value)
    return value if value in USUAL_REMEDIATION else "unknown"


def remediation_of(value: str | None, failure_type: str) -> str:
    """The header's remediation if it is one of the 8, else the type's usual one."""
    return value if value in REMEDIATIONS else USUAL_REMEDIATION[failure_type]


def confidence_of(value: str | None) -> float:
    """The header's confidence clamped to 0..1; the fallback's 0.5 when absent or unreadable."""
    try:
        return min(max(float(value), 0.0), 1.0) if value is not None else LEGACY_CONFIDENCE
    except ValueError:
        return LEGACY_CONFIDENCE
