"""Settings of the shipping service (``WAYBILL_`` prefix, like every Waybill setting).

``delivery_code_keys`` comes from ``WaybillSettings``: the notifier needs the same secret.
"""

from __future__ import annotations

from pydantic import Field

from waybill.common import ports
from waybill.common.settings import WaybillSettings


class ShippingSettings(WaybillSettings):
    shipping_port: int = ports.SHIPPING
    shipping_db_pool_size: int = 10
    # A shipment is due this long after it was created (sla_due_at); one job reports breaches.
    shipping_sla_hours: float = Field(default=48.0, gt=0)
    shipping_sla_interval_s: float = Field(default=30.0, gt=0)
    # Offers: how long one is open, how many agents a wave reaches (0 = every eligible one).
    shipping_offer_ttl_s: float = Field(default=120.0, gt=0)
    shipping_offer_wave_size: int = Field(default=0, ge=0)
    # The dispatcher's turn (expiries, next waves); it is also woken when an agent becomes
    # eligible. A shipment nobody could take is looked at again after the recheck (a shift
    # may have started).
    shipping_dispatch_interval_s: float = Field(default=1.0, gt=0)
    shipping_waiting_recheck_s: float = Field(default=30.0, gt=0)
    # Delivery attempts (ship + every retry_delivery) before only return_to_sender is left.
    shipping_max_attempts: int = Field(default=3, ge=1)
    # How long a command waits for a row another one holds before answering 409 (accept does
    # not wait at all: NOWAIT).
    shipping_lock_timeout_ms: int = Field(default=2000, ge=1)
