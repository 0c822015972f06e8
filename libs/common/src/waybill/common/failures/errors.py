"""The bases every service's errors derive from: each declares its failure type.

A domain error is data (STYLE.md #5, #14): a stable upper-snake ``code``, a failure type and
a human ``detail``. It carries no HTTP status: each service maps its codes to statuses once, in
its API layer (``ERROR_STATUS`` handed to ``waybill.common.http.app.create_app``), so the same
error means the same thing to a consumer (by its type) and to an HTTP client (by its code).

Any exception may also declare its type with a ``failure_type`` attribute (class or instance
level, a ``FailureType`` or its string value; ``failure_class``, the old name, is still read)::

    class StockExhausted(Exception):
        failure_type = FailureType.BUSINESS_LOGIC_VIOLATION

``TransientError`` and ``PermanentError`` are convenience bases for errors without a code
(infrastructure, tests) that already carry one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from waybill.common.failures.taxonomy import FailureType


class DomainError(Exception):
    """A rule said no: ``code`` names the rule, ``detail`` says what happened this time.

    ``title`` (optional) overrides the problem title derived from the code; ``extra`` adds
    members to the problem body (never ``type``/``title``/``status``/``detail``/``code``);
    ``retry_after_s`` says when asking again may work (the HTTP edge sends ``Retry-After``).
    """

    code: ClassVar[str] = "DOMAIN_ERROR"
    failure_type: ClassVar[FailureType] = FailureType.BUSINESS_LOGIC_VIOLATION
    title: ClassVar[str | None] = None

    def __init__(
        self,
        detail: str,
        *,
        extra: Mapping[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})
        self.retry_after_s = retry_after_s


class TransientError(Exception):
    """Base for errors that a later attempt may not hit (defaults to a network blip)."""

    failure_type: FailureType = FailureType.TRANSIENT_NETWORK


class PermanentError(Exception):
    """Base for errors that every attempt will hit again (defaults to invalid input)."""

    failure_type: FailureType = FailureType.PERMANENT_INVALID_INPUT
