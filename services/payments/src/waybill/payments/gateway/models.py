"""The provider's objects as the gateway returns them (fields we do not use are ignored)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class IntentStatus(StrEnum):
    succeeded = "succeeded"
    processing = "processing"
    requires_payment_method = "requires_payment_method"


class PaymentError(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str | None = None
    message: str | None = None


class Intent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    status: str  # an IntentStatus, kept open: a status we do not know must not break parsing
    amount: int
    currency: str
    metadata: dict[str, str] = {}
    amount_refunded: int = 0
    last_payment_error: PaymentError | None = None


class ProviderRefund(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    payment_intent: str
    amount: int
    status: str
