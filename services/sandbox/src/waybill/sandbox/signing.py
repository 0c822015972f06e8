"""The ``Provider-Signature`` header of outgoing webhooks: ``t=<unix>,v1=<hex hmac>``.

The MAC is HMAC-SHA256 with the webhook secret over ``"<t>.<raw body>"`` (Stripe's scheme),
so a receiver verifies the exact bytes it received and rejects stale timestamps.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Provider-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
