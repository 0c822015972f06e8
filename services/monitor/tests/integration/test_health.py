"""``/api/health`` polls the services it is linked to (orders real, the others stopped)."""

from __future__ import annotations

import pytest

from waybill.devstack.testing import Tenant

pytestmark = pytest.mark.infra


async def test_a_stopped_service_makes_the_roll_up_degraded(operator: Tenant):
    answer = await operator.admin.get("/api/health")

    assert answer.status_code == 200, answer.text
    health = answer.json()
    assert health["status"] == "degraded"
    assert health["services"]["orders"]["status"] == "healthy"
    assert health["services"]["orders"]["checks"]["database"]["status"] == "up"
    assert health["services"]["shipping"]["status"] == "unreachable"
    assert health["monitor"] == {"database": "up", "broker": "up"}


async def test_health_is_for_admins(operator: Tenant):
    assert (await operator.service.get("/api/health")).status_code == 403
