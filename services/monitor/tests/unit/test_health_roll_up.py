"""The roll-up of /api/health (CONTRACT.md § monitor), as a rule."""

from __future__ import annotations

from waybill.monitor.health import roll_up

UP = {"status": "up"}
READY = {"status": "healthy", "checks": {"database": UP, "broker": UP}}
OWN = {"database": "up", "broker": "up"}


def services(**changed: dict[str, object]) -> dict[str, dict[str, object]]:
    every = dict.fromkeys(("orders", "payments", "shipping", "notifier"), READY)
    return {**every, **changed}


def test_every_service_ready_is_healthy():
    assert roll_up(services(), OWN) == "healthy"


def test_a_service_other_than_orders_down_is_degraded():
    assert roll_up(services(shipping={"status": "unreachable"}), OWN) == "degraded"
    assert roll_up(services(notifier={"status": "unhealthy", "checks": {}}), OWN) == "degraded"


def test_orders_down_is_unhealthy():
    assert roll_up(services(orders={"status": "unreachable"}), OWN) == "unhealthy"


def test_the_broker_or_a_database_down_anywhere_is_unhealthy():
    broken = {"status": "unhealthy", "checks": {"database": {"status": "down"}, "broker": UP}}
    assert roll_up(services(payments=broken), OWN) == "unhealthy"
    assert roll_up(services(), {"database": "up", "broker": "down"}) == "unhealthy"
