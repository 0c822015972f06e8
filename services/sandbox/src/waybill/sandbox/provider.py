"""The Stripe-like payment provider: payment intents and refunds (docs/sandbox.md).

Each write is one transaction: claim the Idempotency-Key, apply the effect, store the answer
(and, for a refund, write its webhook event). What a payment-method token does is the table
:data:`TOKENS`. Creating an intent is on the path of every order: its answer is known before
the effect, so the claim, the answer and the intent are one driver statement
(:data:`CREATE_INTENT`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import driver
from waybill.sandbox import idempotency
from waybill.sandbox.errors import ProviderError, invalid_request
from waybill.sandbox.idempotency import StoredResponse
from waybill.sandbox.objects import intent_object, refund_object
from waybill.sandbox.tables import intents, refunds
from waybill.sandbox.webhooks import CHARGE_REFUNDED, WebhookEvents

M = TypeVar("M", bound=BaseModel)

INTENTS_PATH = "/v1/payment_intents"
REFUNDS_PATH = "/v1/refunds"

# Claims the Idempotency-Key with the answer stored up front (as idempotency.CLAIM_KEY) and
# creates the intent only if the claim got the key: no row back means an earlier request has
# it (idempotency.replay). jsonb parameters are JSON text.
CREATE_INTENT = """
WITH claimed AS (
    INSERT INTO idempotency_keys (key, request_hash, status_code, response_body)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT DO NOTHING
    RETURNING key
)
INSERT INTO payment_intents (id, amount, currency, payment_method, status, metadata, created,
                             amount_refunded, last_payment_error, charged, idempotency_key,
                             settle_at, notify)
SELECT $5, $6, $7, $8, $9, $10::jsonb, $11, 0, $12::jsonb, $13, claimed.key, $14, $15
FROM claimed
RETURNING id
"""


class CreateIntent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: StrictInt = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    payment_method: str = Field(pattern=r"^pm_", max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict)


class CreateRefund(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payment_intent: str = Field(max_length=255)
    amount: StrictInt | None = Field(default=None, gt=0)


def parse(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ProviderError(
            400,
            "invalid_request_error",
            "parameter_invalid",
            f"{field}: {first['msg']}",
            param=field,
        ) from None


@dataclass(frozen=True)
class TokenOutcome:
    """What a payment-method token does to a new intent."""

    status: str
    charged: bool
    settles_later: bool = False
    notify: bool = True
    error: dict[str, str] | None = None


DECLINE = {"code": "card_declined", "message": "Your card was declined."}

TOKENS: dict[str, TokenOutcome] = {
    "pm_card_ok": TokenOutcome("succeeded", charged=True),
    "pm_card_declined": TokenOutcome("requires_payment_method", charged=False, error=DECLINE),
    "pm_card_async": TokenOutcome("processing", charged=True, settles_later=True),
    "pm_card_async_silent": TokenOutcome(
        "processing", charged=True, settles_later=True, notify=False
    ),
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class PaymentProvider:
    def __init__(
        self,
        engine: AsyncEngine,
        events: WebhookEvents,
        on_events: Callable[[], None],
        *,
        settle_after_s: float,
        on_settlement_scheduled: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.events = events
        self.on_events = on_events
        self.on_settlement_scheduled = on_settlement_scheduled  # after the commit
        self.settle_after = timedelta(seconds=settle_after_s)

    async def create_intent(self, key: str, request: CreateIntent) -> StoredResponse:
        outcome = TOKENS.get(request.payment_method)
        if outcome is None:
            raise invalid_request(
                "payment_method_invalid", f"No such payment method: {request.payment_method}"
            )
        fingerprint = idempotency.request_hash(INTENTS_PATH, request.model_dump())
        now = datetime.now(UTC)
        row = {
            "id": _new_id("pi"),
            "amount": request.amount,
            "currency": request.currency.lower(),
            "payment_method": request.payment_method,
            "status": outcome.status,
            "metadata": request.metadata,
            "created": now,
            "amount_refunded": 0,
            "last_payment_error": outcome.error,
            "charged": outcome.charged,
            "idempotency_key": key,
            "settle_at": now + self.settle_after if outcome.settles_later else None,
            "notify": outcome.notify,
        }
        intent = intent_object(SimpleNamespace(**row))
        if outcome.error is None:
            response = StoredResponse(200, _dumps(intent))
        else:
            error = ProviderError(
                402,
                "card_error",
                outcome.error["code"],
                outcome.error["message"],
                payment_intent=intent,
            )
            response = StoredResponse(402, error.body())
        async with self.engine.begin() as conn:
            created = await (await driver(conn)).fetchval(
                CREATE_INTENT,
                key,
                fingerprint,
                response.status_code,
                response.body,
                row["id"],
                row["amount"],
                row["currency"],
                row["payment_method"],
                row["status"],
                _dumps(row["metadata"]),
                row["created"],
                # As the table's JSON type stored it: JSON null, not SQL NULL, when no error.
                _dumps(row["last_payment_error"]),
                row["charged"],
                row["settle_at"],
                row["notify"],
            )
            if created is None:
                return await idempotency.replay(conn, key, fingerprint)
        if outcome.settles_later:
            self.on_settlement_scheduled()
        return response

    async def get_intent(self, intent_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(intents).where(intents.c.id == intent_id))).first()
        if row is None:
            raise _missing_intent(intent_id)
        return intent_object(row)

    async def create_refund(self, key: str, request: CreateRefund) -> StoredResponse:
        fingerprint = idempotency.request_hash(REFUNDS_PATH, request.model_dump())
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            earlier = await idempotency.claim(conn, key, fingerprint)
            if earlier is not None:
                return earlier
            intent = (
                await conn.execute(
                    select(intents).where(intents.c.id == request.payment_intent).with_for_update()
                )
            ).first()
            if intent is None:
                raise _missing_intent(request.payment_intent)
            amount = _refund_amount(intent, request.amount)
            refund = {
                "id": _new_id("re"),
                "payment_intent": intent.id,
                "amount": amount,
                "idempotency_key": key,
                "created": now,
            }
            await conn.execute(insert(refunds).values(refund))
            refunded = (
                await conn.execute(
                    update(intents)
                    .where(intents.c.id == intent.id)
                    .values(amount_refunded=intents.c.amount_refunded + amount)
                    .returning(*intents.c)
                )
            ).one()
            scheduled = await self.events.emit(
                conn, CHARGE_REFUNDED, [intent_object(refunded)], now
            )
            response = StoredResponse(200, _dumps(refund_object(SimpleNamespace(**refund))))
            await idempotency.record(conn, key, response)
        if scheduled:
            self.on_events()
        return response


def _missing_intent(intent_id: str) -> ProviderError:
    return invalid_request("resource_missing", f"No such payment_intent: '{intent_id}'", status=404)


def _refund_amount(intent: Any, requested: int | None) -> int:
    """The refund rules; an error here rolls the claim back (an error is not an effect)."""
    if intent.status != "succeeded":
        raise invalid_request(
            "charge_not_captured", f"PaymentIntent {intent.id} has status {intent.status}"
        )
    remaining = int(intent.amount - intent.amount_refunded)
    if remaining == 0:
        raise invalid_request("charge_already_refunded", f"{intent.id} is fully refunded")
    amount = remaining if requested is None else requested
    if amount > remaining:
        raise invalid_request(
            "amount_too_large", f"Refund amount {amount} exceeds the remaining {remaining}"
        )
    return amount
