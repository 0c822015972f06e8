"""The provider's API objects as JSON (intent and refund), from their table rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def intent_object(row: Row[Any] | Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "payment_intent",
        "amount": row.amount,
        "currency": row.currency,
        "payment_method": row.payment_method,
        "status": row.status,
        "metadata": row.metadata,
        "created": unix(row.created),
        "amount_refunded": row.amount_refunded,
        "last_payment_error": row.last_payment_error,
    }


def refund_object(row: Row[Any] | Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "refund",
        "payment_intent": row.payment_intent,
        "amount": row.amount,
        "status": "succeeded",
        "created": unix(row.created),
    }
