"""Failures: the taxonomy (``FailureClass``) and the error bases every service shares.

This package is light on purpose: importing it (or ``taxonomy``/``errors``) loads only the
standard library, so a pure domain module can declare ``failure_class`` without importing
httpx, aiokafka or sqlalchemy (a test checks it). Classifying those libraries' exceptions is
``waybill.common.failures.classify``, which imports them and is imported only where records
are processed.
"""

from waybill.common.failures.errors import DomainError, PermanentError, TransientError
from waybill.common.failures.taxonomy import FailureClass, is_retryable

__all__ = [
    "DomainError",
    "FailureClass",
    "PermanentError",
    "TransientError",
    "is_retryable",
]
