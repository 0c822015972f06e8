"""API keys in the shared auth database: schema, issuing, revoking (ADR 0003).

Every service authenticates against one table, ``api_keys`` in the auth database
(``WAYBILL_AUTH_DATABASE_URL``, default ``waybill_auth`` on the service's own server), so a
key issued by ``waybill keys create`` works everywhere at once and no service has to call
another. Only a SHA-256 of each key is stored: keys are
32 random bytes, so a fast hash is as strong as a slow one here (see the ADR).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    MetaData,
    Select,
    Table,
    Text,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from waybill.common.settings import WaybillSettings

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
    # Written at most once a minute per key per process (KeyStore), never per request.
    Column("last_used_at", DateTime(timezone=True), nullable=True),
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


@dataclass(frozen=True)
class KeyRecord:
    """What an operator may see of a key: never its hash, never the plaintext."""

    key_id: str
    tenant_id: str
    role: str
    agent_id: str | None
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def auth_dsn(settings: WaybillSettings, database: str | None = None) -> str:
    """The auth database's URL: ``settings.auth_dsn``, or ``database`` on the service's own
    server when one is named (tests use a fresh one each)."""
    return settings.auth_dsn if database is None else settings.database_dsn(database)


def auth_engine(settings: WaybillSettings, database: str | None = None) -> AsyncEngine:
    # Pre-ping: keys are cached, so this pool is used on cache misses only; a round trip
    # there is cheap, and it spares the first requests after a database restart a 503 on a
    # connection that died with the old server.
    return create_async_engine(
        auth_dsn(settings, database),
        pool_size=2,
        max_overflow=3,
        pool_recycle=300,
        pool_pre_ping=True,
    )


async def _ensure_database(settings: WaybillSettings, database: str | None) -> None:
    """Create the auth database if missing, connected to its server's maintenance database."""
    target = make_url(auth_dsn(settings, database))
    name = target.database
    if not name:
        raise ValueError("the auth database URL names no database")
    on_own_server = database is not None or not settings.auth_database_url
    maintenance = (make_url(settings.server_url).database if on_own_server else None) or "postgres"
    engine = create_async_engine(target.set(database=maintenance), isolation_level="AUTOCOMMIT")
    exists_sql = text("SELECT 1 FROM pg_database WHERE datname = :name")
    try:
        async with engine.connect() as conn:
            if (await conn.execute(exists_sql, {"name": name})).scalar():
                return
            quoted = conn.dialect.identifier_preparer.quote(name)
            try:
                await conn.execute(text(f"CREATE DATABASE {quoted}"))
            except DBAPIError:
                # Another process created it between our check and our CREATE: fine.
                if not (await conn.execute(exists_sql, {"name": name})).scalar():
                    raise
    finally:
        await engine.dispose()


async def ensure_auth_schema(settings: WaybillSettings, *, database: str | None = None) -> None:
    """Create the auth database and ``api_keys`` if missing (idempotent, concurrency-safe)."""
    await _ensure_database(settings, database)
    engine = auth_engine(settings, database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
            await conn.run_sync(metadata.create_all)
            # Auth databases created before last_used_at existed gain it here.
            await conn.execute(
                text("ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz")
            )
    finally:
        await engine.dispose()


async def issue_key(
    settings: WaybillSettings,
    *,
    tenant_id: str,
    role: str,
    agent_id: str | None = None,
    database: str | None = None,
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
    settings: WaybillSettings,
    key_id: str,
    *,
    tenant_id: str | None = None,
    database: str | None = None,
) -> bool:
    """Revoke a key (of ``tenant_id`` only, when given); True if a live key was revoked.
    Every service stops accepting it within the key cache's TTL (a few seconds)."""
    engine = auth_engine(settings, database)
    try:
        async with engine.begin() as conn:
            return await revoke(conn, key_id, tenant_id=tenant_id) is not None
    finally:
        await engine.dispose()


async def list_keys(
    settings: WaybillSettings, *, tenant_id: str | None = None, database: str | None = None
) -> list[KeyRecord]:
    """Every key (of ``tenant_id`` only, when given), oldest first."""
    engine = auth_engine(settings, database)
    try:
        async with engine.connect() as conn:
            return await select_keys(conn, tenant_id=tenant_id)
    finally:
        await engine.dispose()


# -- statements shared by the CLI (above) and the HTTP routes (KeyStore's engine) -------------
_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    api_keys.c.role,
    api_keys.c.agent_id,
    api_keys.c.key_prefix,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def key_record(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=str(row.id),
        tenant_id=row.tenant_id,
        role=row.role,
        agent_id=row.agent_id,
        prefix=row.key_prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def parse_key_id(key_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key_id)
    except ValueError:
        return None


def keys_query(tenant_id: str | None) -> Select[Any]:
    """The visible columns of every key (of ``tenant_id`` only, when given)."""
    query = select(*_KEY_COLUMNS)
    return query if tenant_id is None else query.where(api_keys.c.tenant_id == tenant_id)


async def select_keys(conn: AsyncConnection, *, tenant_id: str | None) -> list[KeyRecord]:
    """Keys oldest first (the CLI's list)."""
    query = keys_query(tenant_id).order_by(api_keys.c.created_at, api_keys.c.id)
    return [key_record(row) for row in await conn.execute(query)]


KeyPosition = tuple[datetime, uuid.UUID]  # (created_at, id) of the last key a page showed


async def newest_keys(
    conn: AsyncConnection, *, tenant_id: str, limit: int, after: KeyPosition | None
) -> tuple[list[KeyRecord], KeyPosition | None]:
    """A page of the tenant's keys, newest first, and the position after it (None: last)."""
    query = keys_query(tenant_id)
    if after is not None:
        query = query.where(tuple_(api_keys.c.created_at, api_keys.c.id) < tuple_(*after))
    query = query.order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc()).limit(limit + 1)
    records = [key_record(row) for row in await conn.execute(query)]
    if len(records) <= limit:
        return records, None
    last = records[limit - 1]
    return records[:limit], (last.created_at, uuid.UUID(last.key_id))


async def revoke(conn: AsyncConnection, key_id: str, *, tenant_id: str | None) -> KeyRecord | None:
    """Revoke a live key; the revoked key, or None if there was no live key of that id (and
    tenant, when given)."""
    parsed = parse_key_id(key_id)
    if parsed is None:
        return None
    statement = (
        update(api_keys)
        .where(api_keys.c.id == parsed, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(*_KEY_COLUMNS)
    )
    if tenant_id is not None:
        statement = statement.where(api_keys.c.tenant_id == tenant_id)
    row = (await conn.execute(statement)).first()
    return None if row is None else key_record(row)


async def find_key(conn: AsyncConnection, key_id: str, *, tenant_id: str) -> KeyRecord | None:
    parsed = parse_key_id(key_id)
    if parsed is None:
        return None
    query = select(*_KEY_COLUMNS).where(api_keys.c.id == parsed, api_keys.c.tenant_id == tenant_id)
    row = (await conn.execute(query)).first()
    return None if row is None else key_record(row)


async def touch_keys(conn: AsyncConnection, key_ids: list[str]) -> None:
    """Set ``last_used_at`` of these keys to now (unless set less than a minute ago)."""
    ids = [parsed for k in key_ids if (parsed := parse_key_id(k)) is not None]
    await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id.in_(ids),
            or_(
                api_keys.c.last_used_at.is_(None),
                api_keys.c.last_used_at < func.now() - text("interval '1 minute'"),
            ),
        )
        .values(last_used_at=func.now())
    )
