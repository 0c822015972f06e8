"""Webhook endpoints: their secrets (Standard Webhooks ``whsec_`` keys), rotation with a grace
period, and which events an endpoint wants. Pure functions over plain values."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 24  # 192 bits, as the Standard Webhooks reference servers generate
ANY_EVENT = "*"


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: ``whsec_`` + base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_secrets(
    secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets a delivery at ``now`` is signed with: the current one, and the one before
    the last rotation while its grace period lasts (both signatures go in the header)."""
    keys = [secret]
    if previous is not None and previous_expires_at is not None and now < previous_expires_at:
        keys.append(previous)
    return keys


def wants(event_types: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``event_type`` (``*``: every type)."""
    return ANY_EVENT in event_types or event_type in event_types
