"""A revoked API key stops working on every service within seconds: revoked through one
service's HTTP API, refused by the other processes too (each caches keys briefly)."""

from __future__ import annotations

import time
import uuid

import httpx
from tests.saga_stack import Saga

from waybill.common.auth import issue_key
from waybill.devstack.testing import Infra, eventually

REVOCATION_BOUND_S = 5.0


async def test_a_key_revoked_on_orders_is_refused_by_orders_and_payments_within_seconds(
    infra: Infra, saga: Saga
) -> None:
    tenant = f"t_{uuid.uuid4().hex[:10]}"
    admin = await issue_key(infra.settings(), tenant_id=tenant, role="admin")
    leaked = await issue_key(infra.settings(), tenant_id=tenant, role="admin")
    services = {"orders": saga.orders.url, "payments": saga.payments.url}
    async with httpx.AsyncClient(timeout=10) as http:

        async def status(url: str, key: str) -> int:
            response = await http.get(
                f"{url}/auth/keys", headers={"authorization": f"Bearer {key}"}
            )
            return response.status_code

        for url in services.values():  # both processes have the key cached now
            assert await status(url, leaked.key) == 200
        revoke = await http.post(
            f"{saga.orders.url}/auth/keys/{leaked.key_id}/revoke",
            headers={"authorization": f"Bearer {admin.key}"},
        )
        assert revoke.status_code == 200, revoke.text
        revoked_at = time.monotonic()
        for name, url in services.items():
            remaining = REVOCATION_BOUND_S - (time.monotonic() - revoked_at)
            code = await eventually(
                lambda url=url: status(url, leaked.key),
                until=lambda code: code != 200,
                timeout_s=max(remaining, 0.1),
                what=f"{name} refusing the revoked key",
            )
            assert code == 401, name
        for url in services.values():  # the admin's own key is untouched
            assert await status(url, admin.key) == 200
