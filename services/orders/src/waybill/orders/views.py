"""Read models the API returns (pydantic, documented in the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from waybill.common.contracts.orders import Address, Customer, LineItem


class OrderView(BaseModel):
    id: str
    status: str
    version: int
    customer: Customer
    items: list[LineItem]
    currency: str
    total_cents: int
    shipping_address: Address
    payment_method: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> OrderView:
        """From a SQLAlchemy row or an asyncpg record of the ``orders`` table."""
        m = getattr(row, "_mapping", row)
        return cls(
            id=m["order_id"],
            status=m["status"],
            version=m["version"],
            customer=m["customer"],
            items=m["items"],
            currency=m["currency"],
            total_cents=m["total_cents"],
            shipping_address=m["shipping_address"],
            payment_method=m["payment_method"],
            expires_at=m["expires_at"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


class StockView(BaseModel):
    sku: str
    available: int
    reserved: int
    version: int
