"""API-key authentication shared by every service (ADR 0003)."""

from waybill.common.auth.dependencies import require_role
from waybill.common.auth.keys import (
    ROLES,
    IssuedKey,
    ensure_auth_schema,
    hash_key,
    issue_key,
    revoke_key,
)
from waybill.common.auth.store import KeyStore, Principal

__all__ = [
    "ROLES",
    "IssuedKey",
    "KeyStore",
    "Principal",
    "ensure_auth_schema",
    "hash_key",
    "issue_key",
    "require_role",
    "revoke_key",
]
