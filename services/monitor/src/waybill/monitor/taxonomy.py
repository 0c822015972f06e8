"""The failure taxonomy as the monitor reads it off a dead letter's headers.

A dead letter carries ``dlq_failure_type``, ``dlq_confidence`` and ``dlq_remediation``
(``waybill.common.failures``: the 15 types and 8 remediations of the source requirements).
Records dead-lettered before the taxonomy had 15 types carry only ``dlq_failure_class`` (the
older, coarser classes): they are mapped to the nearest type, with confidence 0.5 and the
type's usual remediation.
"""

from __future__ import annotations

from typing import Final

from waybill.common.failures import FailureType, Remediation
from waybill.common.failures.taxonomy import LEGACY_NAMES, remediation_for

# Type -> its usual remediation (the seeds table, ``waybill.common.failures.TAXONOMY``).
USUAL_REMEDIATION: Final[dict[str, str]] = {t.value: remediation_for(t).value for t in FailureType}
FAILURE_TYPES: Final = tuple(USUAL_REMEDIATION)
REMEDIATIONS: Final = tuple(r.value for r in Remediation)
_LEGACY: Final[dict[str, str]] = {name: t.value for name, t in LEGACY_NAMES.items()}
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
