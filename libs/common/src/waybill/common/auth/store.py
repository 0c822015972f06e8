"""Key look-ups with a short in-process cache.

Every authenticated request needs its key checked; a cache keeps that off the database for
hot keys, and its short TTL (2 s) bounds how long a revoked key keeps working. Unknown keys
are cached too (briefly), so a client hammering with a bad key costs one query per second,
not one per request. The cache is keyed by the key's hash, never by the plaintext.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.auth.keys import KEY_PREFIX, api_keys, auth_engine, hash_key
from waybill.common.settings import AUTH_DATABASE, WaybillSettings

log = structlog.get_logger(__name__)

_MAX_KEY_CHARS = 256


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
        database: str = AUTH_DATABASE,
        ttl_s: float = 2.0,
        negative_ttl_s: float = 1.0,
        max_entries: int = 10_000,
    ) -> None:
        self.settings = settings
        self.database = database
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._engine: AsyncEngine | None = None
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            if self._engine is None:
                self._engine = auth_engine(self.settings, self.database)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        self._cache.clear()

    async def authenticate(self, key: str) -> Principal | None:
        """The principal of a live key, or None for an unknown, malformed or revoked key."""
        if not key.startswith(KEY_PREFIX) or len(key) > _MAX_KEY_CHARS:
            return None
        key_hash = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = await self._lookup(key_hash)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # crude but bounded: a flood of random keys cannot grow it
        ttl = self.ttl_s if principal is not None else self.negative_ttl_s
        self._cache[key_hash] = (now + ttl, principal)
        return principal

    async def _lookup(self, key_hash: str) -> Principal | None:
        if self._engine is None:
            await self.start()
        assert self._engine is not None
        query = select(
            api_keys.c.id, api_keys.c.tenant_id, api_keys.c.role, api_keys.c.agent_id
        ).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        key_id: uuid.UUID = row.id
        return Principal(
            tenant_id=row.tenant_id, role=row.role, key_id=str(key_id), agent_id=row.agent_id
        )
