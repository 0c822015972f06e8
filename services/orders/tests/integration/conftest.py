"""Fixtures come from the root plugins: ``orders_service`` and ``tenant`` (tests/saga_stack.py)."""

from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

__all__ = ["Tenant", "order_body"]
