"""Settings of the sandbox process (``WAYBILL_`` prefix; docs/sandbox.md § Settings).

The fault knobs here are the values ``POST /admin/faults/reset`` (and a restart) go back to;
``PUT /admin/faults`` changes the live copy in :mod:`waybill.sandbox.faults` only.
"""

from __future__ import annotations

from pydantic import Field

from waybill.common import ports
from waybill.common.settings import WaybillSettings

Rate = Field(default=0.0, ge=0.0, le=1.0)


class SandboxSettings(WaybillSettings):
    sandbox_port: int = ports.SANDBOX
    sandbox_webhook_url: str = f"http://127.0.0.1:{ports.PAYMENTS}/webhooks/provider"
    sandbox_async_settle_s: float = Field(default=1.0, ge=0.0)
    sandbox_latency_ms: float = Field(default=0.0, ge=0.0)
    sandbox_error_rate: float = Rate
    sandbox_reset_rate: float = Rate
    sandbox_timeout_rate: float = Rate
    sandbox_rate_limit_rate: float = Rate
    sandbox_retry_after_s: int = Field(default=1, ge=0)
    sandbox_webhook_delay_s: float = Field(default=0.0, ge=0.0)
    sandbox_webhook_drop_rate: float = Rate
    sandbox_webhook_duplicate_rate: float = Rate
    # The SMS provider (POST /v1/messages): its own knobs, so payment faults leave SMS alone.
    sandbox_sms_latency_ms: float = Field(default=0.0, ge=0.0)
    sandbox_sms_error_rate: float = Rate
    sandbox_sms_rate_limit_rate: float = Rate
    sandbox_sms_retry_after_s: int = Field(default=1, ge=0)
    # The SMTP server (aiosmtpd, in this process): rejections per recipient, latency per message.
    sandbox_smtp_port: int = ports.SANDBOX_SMTP
    sandbox_smtp_latency_ms: float = Field(default=0.0, ge=0.0)
    sandbox_smtp_temporary_reject_rate: float = Rate
    sandbox_smtp_permanent_reject_rate: float = Rate
    # Beyond the contract: operational details with defaults that match it.
    sandbox_database: str = "waybill_sandbox"  # tests point each sandbox at a fresh database
    sandbox_db_pool_size: int = 20  # see orders_db_pool_size
    sandbox_hang_s: float = 60.0  # how long a "timeout" fault holds the answer back
    sandbox_webhook_timeout_s: float = 5.0
    sandbox_webhook_retry_base_s: float = 1.0
    sandbox_webhook_max_age_s: float = 600.0  # retries stop this long after the event
    sandbox_webhook_concurrency: int = 64
    # Settlement and webhook delivery are woken when work appears; this is their fallback poll.
    sandbox_poll_s: float = Field(default=5.0, gt=0)
