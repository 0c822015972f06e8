"""Settings of the orders service (``WAYBILL_`` prefix, like every Waybill setting)."""

from __future__ import annotations

from pydantic import Field

from waybill.common import ports
from waybill.common.settings import WaybillSettings


class OrdersSettings(WaybillSettings):
    orders_port: int = ports.ORDERS
    orders_reservation_ttl_s: float = 15 * 60
    orders_expiry_interval_s: float = 5.0
    # How long an Idempotency-Key of POST /orders is remembered (24 h, as payment APIs do).
    orders_idempotency_ttl_s: float = Field(default=24 * 60 * 60, gt=0)
    # Connections kept open. Beyond it the pool opens as many again, but closes each on
    # return when the pool is full: under load that churn meant a new PostgreSQL connection
    # (and fresh statement preparation) per request, a third of POST /orders' CPU (profiled).
    orders_db_pool_size: int = 20
