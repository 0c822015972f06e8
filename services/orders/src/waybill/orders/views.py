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
        return cls(
            id=row.order_id,
            status=row.status,
            version=row.version,
            customer=row.customer,
            items=row.items,
            currency=row.currency,
            total_cents=row.total_cents,
            shipping_address=row.shipping_address,
            payment_method=row.payment_method,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class StockView(BaseModel):
    sku: str
    available: int
    reserved: int
    version: int


class EventView(BaseModel):
    id: str
    type: str
    version: int
    schema_version: int
    data: dict[str, Any]
    recorded_at: datetime
    global_position: int
