"""Idempotency-Key handling of the provider API: insert-first, then replay.

The claim is the first write of the request's transaction. A concurrent request with the
same key blocks on the primary key until the first transaction ends: if it committed, the
loser finds the stored answer and replays it; if it rolled back (an error answer is not an
effect), the loser's insert goes through and it does the work itself. So one key charges at
most once, however many requests race.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.sandbox.errors import ProviderError
from waybill.sandbox.tables import idempotency_keys

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    """An answer as it went out the first time (replayed byte for byte)."""

    status_code: int
    body: str


def request_hash(path: str, body: dict[str, Any]) -> str:
    """Fingerprint of a request: the same key on another endpoint counts as another body."""
    canonical = json.dumps([path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> str:
    if not key:
        raise ProviderError(
            400, "invalid_request_error", "parameter_missing", "Idempotency-Key header required"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise ProviderError(
            400,
            "invalid_request_error",
            "parameter_invalid",
            f"Idempotency-Key longer than {MAX_KEY_LENGTH} characters",
        )
    return key


async def claim(
    conn: AsyncConnection, key: str, fingerprint: str, response: StoredResponse | None = None
) -> StoredResponse | None:
    """Claim ``key`` for this request; None if claimed, else the earlier answer to replay.

    ``response`` may be given up front when the answer is known before the effect (saves a
    round trip); otherwise call :func:`record` before the transaction commits.
    """
    claimed = await conn.execute(
        pg_insert(idempotency_keys)
        .values(
            key=key,
            request_hash=fingerprint,
            status_code=response.status_code if response else 0,
            response_body=response.body if response else "",
        )
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    if claimed.first() is not None:
        return None
    earlier = (
        await conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == key))
    ).one()
    if earlier.request_hash != fingerprint:
        raise ProviderError(
            400,
            "idempotency_error",
            "idempotency_key_reused",
            "Keys for idempotent requests can only be used with the same parameters they were"
            " first used with.",
        )
    return StoredResponse(earlier.status_code, earlier.response_body)


async def record(conn: AsyncConnection, key: str, response: StoredResponse) -> None:
    await conn.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.key == key)
        .values(status_code=response.status_code, response_body=response.body)
    )
