"""Settings of the payments service (``WAYBILL_`` prefix, like every Waybill setting).

``provider_url``, ``provider_api_key`` and ``provider_webhook_secret`` come from
``WaybillSettings`` (shared with the sandbox that plays the provider).
"""

from __future__ import annotations

from pydantic import Field

from waybill.common import ports
from waybill.common.settings import WaybillSettings


class PaymentsSettings(WaybillSettings):
    payments_port: int = ports.PAYMENTS
    payments_db_pool_size: int = 20
    payments_provider_name: str = "sandbox"
    # Gateway: every provider call is bounded; transient failures are retried with backoff.
    payments_provider_timeout_s: float = Field(default=5.0, gt=0)
    payments_retry_base_s: float = Field(default=1.0, ge=0)
    payments_retry_max_s: float = Field(default=30.0, ge=0)
    payments_retry_attempts: int = Field(default=3, ge=1)
    payments_rate_limit_base_s: float = Field(default=5.0, ge=0)
    payments_rate_limit_max_s: float = Field(default=120.0, ge=0)
    payments_breaker_failure_threshold: int = Field(default=5, ge=1)
    payments_breaker_reset_s: float = Field(default=30.0, gt=0)
    # Charging (the charges work queue): concurrent provider calls, the worker's fallback poll
    # (it is woken by commits; the poll also recovers lapsed leases), and a job's lease.
    payments_charger_concurrency: int = Field(default=16, ge=1)
    payments_sweep_interval_s: float = Field(default=2.0, gt=0)
    payments_claim_lease_s: float = Field(default=60.0, gt=0)
    # Webhooks and payment sync.
    payments_webhook_tolerance_s: float = Field(default=300.0, gt=0)
    payments_sync_interval_s: float = Field(default=60.0, gt=0)
    payments_sync_threshold_s: float = Field(default=30.0, ge=0)
