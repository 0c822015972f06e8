"""Default ports of every Waybill process (CONTRACT.md § Running it). One source of truth."""

from typing import Final

ORDERS: Final = 8001
PAYMENTS: Final = 8002
SHIPPING: Final = 8003
NOTIFIER: Final = 8004
MONITOR: Final = 8005
SANDBOX: Final = 8010
SANDBOX_SMTP: Final = 8025
POSTGRES: Final = 15432
KAFKA: Final = 19092

SERVICE_PORTS: Final[dict[str, int]] = {
    "orders": ORDERS,
    "payments": PAYMENTS,
    "shipping": SHIPPING,
    "notifier": NOTIFIER,
    "monitor": MONITOR,
}
