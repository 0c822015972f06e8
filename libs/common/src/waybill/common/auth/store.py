"""Key look-ups with a short in-process cache.

Every authenticated request needs its key checked; a cache keeps that off the database for
hot keys, and its short TTL (2 s) bounds how long a revoked key keeps working. Unknown keys
are cached too (briefly), so a client hammering with a bad key costs one query per second,
not one per request. The cache is keyed by the key's hash, never by the plaintext.

``last_used_at`` is kept cheaply: the store remembers when it last wrote it for each key and
writes it again (in the background, batched, off the request) at most once a minute per key.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.auth.keys import (
    KEY_PREFIX,
    KeyPosition,
    KeyRecord,
    api_keys,
    auth_engine,
    find_key,
    hash_key,
    newest_keys,
    revoke,
    touch_keys,
)
from waybill.common.settings import WaybillSettings

log = structlog.get_logger(__name__)

_MAX_KEY_CHARS = 256
LAST_USED_EVERY_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and role of the API key on the request."""

    tenant_id: str
    role: str
    key_id: str
    agent_id: str | None = None


class KeyStore:
    """Authenticates API keys against the shared auth database. ``start()`` before use (or let
    the first look-up start it), ``close()`` on shutdown."""

    def __init__(
        self,
        settings: WaybillSettings,
        *,
        database: str | None = None,
        ttl_s: float = 2.0,
        negative_ttl_s: float = 1.0,
        max_entries: int = 10_000,
        last_used_every_s: float = LAST_USED_EVERY_S,
    ) -> None:
        self.settings = settings
        self.database = database
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._engine: AsyncEngine | None = None
        self.last_used_every_s = last_used_every_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._by_id: dict[tuple[str, str], tuple[float, Principal | None]] = {}
        self._start_lock = asyncio.Lock()
        self._touched: dict[str, float] = {}  # key id -> when last_used_at was last written
        self._due: set[str] = set()
        self._touching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._start_lock:
            if self._engine is None:
                self._engine = auth_engine(self.settings, self.database)

    async def close(self) -> None:
        if self._touching is not None:
            await asyncio.gather(self._touching, return_exceptions=True)
            self._touching = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        self._cache.clear()
        self._by_id.clear()

    async def authenticate(self, key: str) -> Principal | None:
        """The principal of a live key, or None for an unknown, malformed or revoked key."""
        if not key.startswith(KEY_PREFIX) or len(key) > _MAX_KEY_CHARS:
            return None
        key_hash = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._lookup(key_hash)
            if len(self._cache) >= self.max_entries:
                self._cache.clear()  # crude but bounded: a flood of random keys cannot grow it
            ttl = self.ttl_s if principal is not None else self.negative_ttl_s
            self._cache[key_hash] = (now + ttl, principal)
        if principal is not None and now - self._touched.get(principal.key_id, -1e9) >= (
            self.last_used_every_s
        ):
            self._touch_later(principal.key_id, now)
        return principal

    async def live_key(self, tenant_id: str, key_id: str) -> Principal | None:
        """The principal of the tenant's key ``key_id`` while it is live, else None: for a
        session that holds a key's id rather than the key (the monitor's UI). Cached like
        :meth:`authenticate`, so a revoked key stops within the TTL."""
        now = time.monotonic()
        cached = self._by_id.get((tenant_id, key_id))
        if cached is not None and cached[0] > now:
            return cached[1]
        async with (await self._started()).connect() as conn:
            record = await find_key(conn, key_id, tenant_id=tenant_id)
        principal = None
        if record is not None and record.revoked_at is None:
            principal = Principal(
                tenant_id=record.tenant_id,
                role=record.role,
                key_id=record.key_id,
                agent_id=record.agent_id,
            )
        if len(self._by_id) >= self.max_entries:
            self._by_id.clear()
        ttl = self.ttl_s if principal is not None else self.negative_ttl_s
        self._by_id[(tenant_id, key_id)] = (now + ttl, principal)
        return principal

    def _touch_later(self, key_id: str, now: float) -> None:
        """Record that the key was used, in the background: one batched UPDATE for every key
        that is due, and none while one is already running."""
        if len(self._touched) >= self.max_entries:
            self._touched.clear()
        self._touched[key_id] = now
        self._due.add(key_id)
        if self._touching is None or self._touching.done():
            self._touching = asyncio.create_task(self._touch(), name="api-key-last-used")

    async def _touch(self) -> None:
        while self._due:
            key_ids, self._due = sorted(self._due), set()
            try:
                async with (await self._started()).begin() as conn:
                    await touch_keys(conn, key_ids)
            except Exception as exc:  # bookkeeping only: never fail a request for it
                log.warning("api_key_last_used_failed", error=f"{type(exc).__name__}: {exc}")
                for key_id in key_ids:  # try again on the key's next use
                    self._touched.pop(key_id, None)
                return

    async def keys_of(
        self, tenant_id: str, *, limit: int, after: KeyPosition | None
    ) -> tuple[list[KeyRecord], KeyPosition | None]:
        """A page of the tenant's keys, newest first (``GET /auth/keys``), and the next
        page's position."""
        async with (await self._started()).connect() as conn:
            return await newest_keys(conn, tenant_id=tenant_id, limit=limit, after=after)

    async def revoke(self, tenant_id: str, key_id: str) -> KeyRecord | None:
        """Revoke the tenant's key; the key as it now is (revoked earlier too), or None when the
        tenant has no such key. This process forgets it at once; the others within the
        cache TTL."""
        async with (await self._started()).begin() as conn:
            record = await revoke(conn, key_id, tenant_id=tenant_id)
            if record is None:
                record = await find_key(conn, key_id, tenant_id=tenant_id)
        if record is not None:
            self._forget(record.key_id)
        return record

    def _forget(self, key_id: str) -> None:
        for key_hash, (_, principal) in list(self._cache.items()):
            if principal is not None and principal.key_id == key_id:
                del self._cache[key_hash]
        for ids in [ids for ids in self._by_id if ids[1] == key_id]:
            del self._by_id[ids]

    async def _started(self) -> AsyncEngine:
        if self._engine is None:
            await self.start()
        assert self._engine is not None
        return self._engine

    async def _lookup(self, key_hash: str) -> Principal | None:
        engine = await self._started()
        query = select(
            api_keys.c.id, api_keys.c.tenant_id, api_keys.c.role, api_keys.c.agent_id
        ).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        key_id: uuid.UUID = row.id
        return Principal(
            tenant_id=row.tenant_id, role=row.role, key_id=str(key_id), agent_id=row.agent_id
        )
