"""Settings of the monitor (``WAYBILL_`` prefix, like every Waybill setting)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from waybill.common import ports
from waybill.common.settings import WaybillSettings


def _local(port: int) -> str:
    return f"http://127.0.0.1:{port}"


class MonitorSettings(WaybillSettings):
    monitor_port: int = ports.MONITOR
    monitor_db_pool_size: int = 5
    # Who sees a dead letter whose record carries no tenant (CONTRACT.md § monitor).
    operator_tenant: str = "default"
    # Signs the admin UI's session cookies; unset: a random secret per process (sessions end
    # when it restarts, and each replica has its own).
    monitor_session_secret: SecretStr | None = None
    # The services whose readiness /api/health rolls up; the dev stack links them
    # (waybill.devstack.topology), the defaults are the topology's ports.
    monitor_orders_url: str = _local(ports.ORDERS)
    monitor_payments_url: str = _local(ports.PAYMENTS)
    monitor_shipping_url: str = _local(ports.SHIPPING)
    monitor_notifier_url: str = _local(ports.NOTIFIER)
    # Each poll of a service's /health/ready is bounded: a hung service reads as down.
    monitor_health_timeout_s: float = Field(default=2.0, gt=0)
    # The notifier's replay of a delivery dead letter is bounded too.
    monitor_replay_timeout_s: float = Field(default=10.0, gt=0)

    # Retention: resolved and abandoned dead letters older than this (by their last change) are
    # deleted by a periodic job every ``..._interval_s``; an unresolved one never is.
    monitor_dlq_retention_s: float = Field(default=30 * 86_400.0, gt=0)
    monitor_dlq_retention_interval_s: float = Field(default=3600.0, gt=0)
    # The bulk jobs' worker wakes on a NOTIFY; this is its fallback poll.
    monitor_bulk_poll_s: float = Field(default=5.0, gt=0)
    # Each read of a service's /metrics or /admin/queues, and of the broker's offsets, is
    # bounded: a service that does not answer in time is shown as unknown.
    monitor_scrape_timeout_s: float = Field(default=2.0, gt=0)

    def service_urls(self) -> dict[str, str]:
        """Every polled service's base URL by name."""
        return {
            "orders": self.monitor_orders_url,
            "payments": self.monitor_payments_url,
            "shipping": self.monitor_shipping_url,
            "notifier": self.monitor_notifier_url,
        }
