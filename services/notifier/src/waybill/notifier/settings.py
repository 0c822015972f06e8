"""Settings of the notifier (``WAYBILL_`` prefix, like every Waybill setting)."""

from __future__ import annotations

from pydantic import Field

from waybill.common import ports
from waybill.common.settings import WaybillSettings


class NotifierSettings(WaybillSettings):
    notifier_port: int = ports.NOTIFIER
    notifier_db_pool_size: int = 10
    # Seconds between attempts after the first (each capped at 3600): CONTRACT.md § notifier.
    notifier_retry_schedule_s: str = "60,120,240,480,960"
    # How long a rotated-out secret still signs (every delivery then carries both signatures).
    notifier_secret_grace_s: float = Field(default=86400.0, ge=0)
    # An endpoint without a success for this long is disabled.
    notifier_disable_after_s: float = Field(default=5 * 86400.0, gt=0)
    # Targets exempt from the SSRF check: comma-separated CIDRs or hosts, optional :port.
    notifier_allowed_targets: str = ""
    # Every attempt is bounded: connect within the first, the whole answer within the second.
    notifier_connect_timeout_s: float = Field(default=5.0, gt=0)
    notifier_request_timeout_s: float = Field(default=15.0, gt=0)
    notifier_delivery_concurrency: int = Field(default=16, ge=1)
    # At most this many attempts to one endpoint at once in a process: a slow endpoint holds
    # these slots, never all of them (the other endpoints' deliveries go on).
    notifier_endpoint_concurrency: int = Field(default=4, ge=1)
    # A receiver's answer is read up to this size; a larger one is the error class too_large.
    notifier_max_response_bytes: int = Field(default=65536, ge=1024)
    # The breaker of an endpoint opens after this many failed attempts in a row (no answer or
    # 5xx) and lets a probe through after the reset; while open, deliveries wait, unattempted.
    notifier_breaker_failures: int = Field(default=5, ge=1)
    notifier_breaker_reset_s: float = Field(default=30.0, gt=0)

    # --- customer email and SMS (the sandbox's SMTP server and SMS provider by default) ---
    notifier_smtp_host: str = "127.0.0.1"
    notifier_smtp_port: int = ports.SANDBOX_SMTP
    notifier_smtp_timeout_s: float = Field(default=10.0, gt=0)
    notifier_mail_from: str = "Waybill <no-reply@notifier.waybill.test>"
    notifier_sms_url: str = f"http://127.0.0.1:{ports.SANDBOX}"
    # The SMS provider's API key; unset: the provider key (the sandbox serves both).
    notifier_sms_api_key: str | None = None
    notifier_sms_timeout_s: float = Field(default=10.0, gt=0)
    # Attempts per message (with a recorded outcome), spaced by exponential backoff + jitter.
    notifier_message_attempts: int = Field(default=3, ge=1)
    notifier_message_backoff_s: float = Field(default=5.0, gt=0)
    notifier_message_backoff_max_s: float = Field(default=300.0, gt=0)
    # A message waiting this long counts one priority higher (twice as long: two), so a low
    # one is not starved by a steady stream of urgent ones.
    notifier_aging_s: float = Field(default=300.0, gt=0)
    # Per-template hold before sending (send_at), e.g. "delivered=600,returned=0"; default 0.
    notifier_template_delays_s: str = ""
    notifier_message_concurrency: int = Field(default=8, ge=1)
