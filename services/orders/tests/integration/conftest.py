"""Fixtures come from the waybill.common.testing plugin: ``orders_service``, ``tenant``."""

from waybill.common.testing import Tenant, order_body

__all__ = ["Tenant", "order_body"]
