"""The SMS provider: ``POST /v1/messages`` "sends" a text (stores it), ``GET /sms`` lists them.

A retry carries the same ``Idempotency-Key`` header as the payment API does, and goes through
the same insert-first claim (idempotency.py): the first request stores the message and its
answer in one transaction, a retry gets that answer back and stores nothing. Without the
header every request is a new message, as with real providers.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.sandbox import idempotency
from waybill.sandbox.idempotency import StoredResponse
from waybill.sandbox.objects import unix
from waybill.sandbox.tables import sms_messages

MESSAGES_PATH = "/v1/messages"
E164 = r"^\+[1-9][0-9]{1,14}$"
MAX_BODY_CHARS = 1600  # ten concatenated segments, what common providers allow


class SendSms(BaseModel):
    model_config = ConfigDict(extra="ignore")

    to: StrictStr = Field(pattern=E164)
    body: StrictStr = Field(min_length=1, max_length=MAX_BODY_CHARS)

    # Not a body field (the header is): refused rather than ignored, so a caller who puts it in
    # the body learns at once instead of sending duplicates on every retry.
    idempotency_key: None = Field(default=None, description="use the Idempotency-Key header")

    @field_validator("body")
    @classmethod
    def _storable(cls, body: str) -> str:
        if "\x00" in body:  # PostgreSQL text cannot hold it
            raise ValueError("must not contain NUL")
        return body


def sms_object(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "message",
        "to": row["to"],
        "body": row["body"],
        "status": row["status"],
        "idempotency_key": row["idempotency_key"],
        "created": unix(row["created"]),
    }


class SmsProvider:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def send(self, key: str | None, request: SendSms) -> StoredResponse:
        message = {
            "id": f"sms_{secrets.token_hex(12)}",
            "to": request.to,
            "body": request.body,
            "status": "queued",
            "idempotency_key": key,
            "created": datetime.now(UTC),
        }
        response = StoredResponse(201, json.dumps(sms_object(message)))
        async with self.engine.begin() as conn:
            if key is not None:
                fingerprint = idempotency.request_hash(MESSAGES_PATH, request.model_dump())
                earlier = await idempotency.claim(conn, key, fingerprint, response)
                if earlier is not None:
                    return earlier
            await conn.execute(insert(sms_messages).values(message))
        return response

    async def list(self, to: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` messages (to one number, if given), newest last."""
        query = (
            select(sms_messages)
            .order_by(sms_messages.c.created.desc(), sms_messages.c.id.desc())
            .limit(limit)
        )
        if to is not None:
            query = query.where(sms_messages.c.to == to)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [sms_object(row) for row in reversed(rows)]
