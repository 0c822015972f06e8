"""The payment provider adapter: HTTP calls with timeouts, retries, rate-limit handling and a
circuit breaker. Callers see typed intents and refunds, or one of the ``errors``."""

from waybill.payments.gateway.client import ProviderGateway, build_gateway
from waybill.payments.gateway.errors import (
    CardDeclined,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from waybill.payments.gateway.models import Intent, IntentStatus, ProviderRefund
from waybill.payments.gateway.retry import ProviderRetry

__all__ = [
    "CardDeclined",
    "Intent",
    "IntentStatus",
    "ProviderError",
    "ProviderGateway",
    "ProviderRefund",
    "ProviderRejected",
    "ProviderRetry",
    "ProviderUnavailable",
    "build_gateway",
]
