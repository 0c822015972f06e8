"""Failures: the taxonomy (``FailureType``, ``Remediation``, ``Classification``) and the error
bases every service shares.

This package is light on purpose: importing it (or ``taxonomy``/``errors``/``fingerprint``)
loads only the standard library, so a pure domain module can declare ``failure_type`` without
importing httpx, aiokafka or sqlalchemy (a test checks it). Classifying those libraries'
exceptions is ``waybill.common.failures.classify``, which imports them and is imported only
where records are processed.
"""

from waybill.common.failures.errors import DomainError, PermanentError, TransientError
from waybill.common.failures.taxonomy import (
    TAXONOMY,
    Classification,
    FailureType,
    Remediation,
    is_retryable,
    remediation_for,
)

__all__ = [
    "TAXONOMY",
    "Classification",
    "DomainError",
    "FailureType",
    "PermanentError",
    "Remediation",
    "TransientError",
    "is_retryable",
    "remediation_for",
]
