"""Idempotency-Key handling of the provider API: insert-first, then replay.

The claim is the first write of the request's transaction. A concurrent request with the
same key blocks on the primary key until the first transaction ends: if it committed, the
loser finds the stored answer and replays it; if it rolled back (an error answer is not an
effect), the loser's insert goes through and it does the work itself. So one key charges at
most once, however many requests race.

The statements run on the driver (``waybill.common.db.driver``): creating an intent is on the
path of every order. A request whose answer is known up front may fold the claim into its
effect's statement (``payment_intents`` does, see ``provider.CREATE_INTENT``) and call
:func:`replay` when it got no row back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.db import driver
from waybill.sandbox.errors import ProviderError

MAX_KEY_LENGTH = 255

# The claim: a row back means this request owns the key; none, that an earlier one (committed,
# or waited for until it committed) does.
CLAIM_KEY = """
INSERT INTO idempotency_keys (key, request_hash, status_code, response_body)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING key
"""

# The earlier request's answer. A statement of its own: only a new statement's snapshot sees the
# transaction the claim waited for.
EARLIER_ANSWER = (
    "SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE key = $1"
)

RECORD_ANSWER = "UPDATE idempotency_keys SET status_code = $2, response_body = $3 WHERE key = $1"


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
    claimed = await (await driver(conn)).fetchval(
        CLAIM_KEY,
        key,
        fingerprint,
        response.status_code if response else 0,
        response.body if response else "",
    )
    if claimed is not None:
        return None
    return await replay(conn, key, fingerprint)


async def replay(conn: AsyncConnection, key: str, fingerprint: str) -> StoredResponse:
    """The answer stored under ``key`` (claimed by an earlier request), if this request is the
    same; ``idempotency_key_reused`` otherwise."""
    earlier = await (await driver(conn)).fetchrow(EARLIER_ANSWER, key)
    if earlier is None:  # keys are never deleted: a claim that found one finds it here
        raise AssertionError(f"idempotency key {key!r} neither claimed nor found")
    if earlier["request_hash"] != fingerprint:
        raise ProviderError(
            400,
            "idempotency_error",
            "idempotency_key_reused",
            "Keys for idempotent requests can only be used with the same parameters they were"
            " first used with.",
        )
    return StoredResponse(earlier["status_code"], earlier["response_body"])


async def record(conn: AsyncConnection, key: str, response: StoredResponse) -> None:
    await (await driver(conn)).execute(RECORD_ANSWER, key, response.status_code, response.body)
