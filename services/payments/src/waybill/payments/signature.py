"""Verifying the provider's webhook signature: ``Provider-Signature: t=<unix>,v1=<hex>``.

``v1`` is HMAC-SHA256(secret, ``"<t>.<raw body>"``) in hex. Several ``v1`` entries may be
present (the provider rolling its secret); one match is enough. Compared in constant time
(``hmac.compare_digest``). The timestamp must be within ``tolerance_s`` of our clock, either
way, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from waybill.common.failures import DomainError, FailureType


class SignatureError(DomainError):
    """The request is not the provider's: never applied, never retried."""

    code = "INVALID_SIGNATURE"
    failure_type = FailureType.PERMANENT_AUTHENTICATION


class TimestampOutOfTolerance(SignatureError):
    code = "TIMESTAMP_OUT_OF_TOLERANCE"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header value the provider sends for ``body`` at ``timestamp``."""
    return f"t={timestamp},v1={_digest(body, secret, timestamp)}"


def verify(
    header: str | None, body: bytes, secret: str, *, tolerance_s: float, now: float | None = None
) -> None:
    """Raise ``SignatureError`` (or ``TimestampOutOfTolerance``) unless ``header`` signs
    ``body`` with ``secret`` at a time within ``tolerance_s`` of ``now``."""
    if not header:
        raise SignatureError("the Provider-Signature header is missing")
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise TimestampOutOfTolerance(
            f"the signature's timestamp is more than {tolerance_s:g} s from the current time"
        )
    expected = _digest(body, secret, timestamp)
    # Every candidate is compared (no early exit), so timing reveals nothing either.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no v1 signature matches the body")


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("the Provider-Signature header is malformed")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise SignatureError("the signature's timestamp is not an integer") from exc
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("the Provider-Signature header needs t= and at least one v1=")
    return timestamp, signatures


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
