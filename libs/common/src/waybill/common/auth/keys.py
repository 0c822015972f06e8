"""API keys in the shared auth database: schema, issuing, revoking (ADR 0003).

Every service authenticates against one table, ``api_keys`` in ``waybill_auth`` on the
configured PostgreSQL server, so a key issued by ``waybill keys create`` works everywhere
at once and no service has to call another. Only a SHA-256 of each key is stored: keys are
32 random bytes, so a fast hash is as strong as a slow one here (see the ADR).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    func,
    insert,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from waybill.common.settings import AUTH_DATABASE, WaybillSettings

ROLES: Final = frozenset({"service", "agent", "admin"})
KEY_PREFIX: Final = "wb_live_"
_KEY_RANDOM_BYTES: Final = 32
_DISPLAY_PREFIX_CHARS: Final = len(KEY_PREFIX) + 8
# Serialises concurrent schema creation (CREATE TABLE IF NOT EXISTS alone can still race).
_SCHEMA_LOCK_ID: Final = 0x7761_7962_6175_7468  # "waybauth"

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("agent_id", Text, nullable=True),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("key_prefix", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('service', 'agent', 'admin')", name="ck_api_keys_role"),
)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key. ``key`` is the only copy of the plaintext: show it once."""

    key: str
    key_id: str
    tenant_id: str
    role: str
    agent_id: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_RANDOM_BYTES)


def auth_engine(settings: WaybillSettings, database: str = AUTH_DATABASE) -> AsyncEngine:
    return create_async_engine(
        settings.database_dsn(database), pool_size=2, max_overflow=3, pool_recycle=300
    )


async def _ensure_database(settings: WaybillSettings, database: str) -> None:
    maintenance = make_url(settings.server_url).database or "postgres"
    engine = create_async_engine(settings.database_dsn(maintenance), isolation_level="AUTOCOMMIT")
    exists_sql = text("SELECT 1 FROM pg_database WHERE datname = :name")
    try:
        async with engine.connect() as conn:
            if (await conn.execute(exists_sql, {"name": database})).scalar():
                return
            quoted = conn.dialect.identifier_preparer.quote(database)
            try:
                await conn.execute(text(f"CREATE DATABASE {quoted}"))
            except DBAPIError:
                # Another process created it between our check and our CREATE: fine.
                if not (await conn.execute(exists_sql, {"name": database})).scalar():
                    raise
    finally:
        await engine.dispose()


async def ensure_auth_schema(settings: WaybillSettings, *, database: str = AUTH_DATABASE) -> None:
    """Create the auth database and ``api_keys`` if missing (idempotent, concurrency-safe)."""
    await _ensure_database(settings, database)
    engine = auth_engine(settings, database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()


async def issue_key(
    settings: WaybillSettings,
    *,
    tenant_id: str,
    role: str,
    agent_id: str | None = None,
    database: str = AUTH_DATABASE,
) -> IssuedKey:
    """Create a key for ``tenant_id`` with ``role``; the plaintext is returned, never stored."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {sorted(ROLES)}")
    if not tenant_id:
        raise ValueError("tenant_id must not be empty")
    await ensure_auth_schema(settings, database=database)
    key = generate_key()
    key_id = uuid.uuid4()
    engine = auth_engine(settings, database)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    tenant_id=tenant_id,
                    role=role,
                    agent_id=agent_id,
                    key_hash=hash_key(key),
                    key_prefix=key[:_DISPLAY_PREFIX_CHARS],
                )
            )
    finally:
        await engine.dispose()
    return IssuedKey(key, str(key_id), tenant_id, role, agent_id)


async def revoke_key(
    settings: WaybillSettings, key_id: str, *, database: str = AUTH_DATABASE
) -> bool:
    """Revoke a key; True if a live key was revoked. Every service stops accepting it within
    the key cache's TTL (a few seconds)."""
    engine = auth_engine(settings, database)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == uuid.UUID(key_id), api_keys.c.revoked_at.is_(None))
                .values(revoked_at=func.now())
                .returning(api_keys.c.id)
            )
            return result.first() is not None
    finally:
        await engine.dispose()
