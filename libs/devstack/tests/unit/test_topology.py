"""The topology is the one list of services: ports, databases and links all derive from it."""

from __future__ import annotations

import pytest

from waybill.common import ports
from waybill.devstack.topology import (
    REPLICA_PORT_STEP,
    SERVICES,
    Link,
    Listener,
    ServiceSpec,
    link_env,
    listener_ports,
    service,
)


def test_every_service_listens_on_its_port_from_the_one_ports_module():
    assert {spec.name: spec.default_port for spec in SERVICES} == {
        "sandbox": ports.SANDBOX,
        "orders": ports.ORDERS,
        "payments": ports.PAYMENTS,
        "shipping": ports.SHIPPING,
        "notifier": ports.NOTIFIER,
        "monitor": ports.MONITOR,
    }
    assert service("orders").port({"WAYBILL_ORDERS_PORT": "9101"}) == 9101


def test_the_links_wire_payments_to_the_provider_and_the_provider_back_to_payments():
    urls = {"sandbox": "http://127.0.0.1:1", "payments": "http://127.0.0.1:2"}

    assert link_env(SERVICES, urls.get) == {
        "WAYBILL_PROVIDER_URL": "http://127.0.0.1:1",
        "WAYBILL_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:2/webhooks/provider",
        "WAYBILL_NOTIFIER_SMS_URL": "http://127.0.0.1:1",
        "WAYBILL_MONITOR_PAYMENTS_URL": "http://127.0.0.1:2",
    }


def test_the_monitor_polls_every_running_service_it_is_linked_to():
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.SERVICE_PORTS.items()}

    env = link_env([service("monitor")], urls.get)

    assert env == {
        f"WAYBILL_MONITOR_{name.upper()}_URL": urls[name]
        for name in ("orders", "payments", "shipping", "notifier")
    }


def test_the_notifier_sends_email_to_the_sandbox_smtp_port_it_was_given():
    urls = {"sandbox": "http://127.0.0.1:1"}
    given = listener_ports(SERVICES, {"WAYBILL_SANDBOX_SMTP_PORT": "2525"})

    assert given == {"WAYBILL_SANDBOX_SMTP_PORT": 2525}
    assert link_env(SERVICES, urls.get, given.get)["WAYBILL_NOTIFIER_SMTP_PORT"] == "2525"
    default = listener_ports(SERVICES, {})
    assert link_env(SERVICES, urls.get, default.get)["WAYBILL_NOTIFIER_SMTP_PORT"] == str(
        ports.SANDBOX_SMTP
    )
    assert "WAYBILL_NOTIFIER_SMTP_PORT" not in link_env(SERVICES, {}.get, given.get)


def test_a_link_to_a_service_that_does_not_run_is_left_to_the_default():
    assert link_env(SERVICES, {"payments": "http://127.0.0.1:2"}.get) == {
        "WAYBILL_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:2/webhooks/provider",
        "WAYBILL_MONITOR_PAYMENTS_URL": "http://127.0.0.1:2",
    }


def test_a_new_service_is_one_entry_with_its_database_port_setting_and_links():
    audit = ServiceSpec("audit", "waybill.audit", 8009, links=(Link("WAYBILL_X_URL", "orders"),))

    assert audit.port_env == "WAYBILL_AUDIT_PORT"
    assert audit.databases == ("waybill_audit",)
    assert link_env([*SERVICES, audit], {"orders": "http://o"}.get)["WAYBILL_X_URL"] == "http://o"


def test_replicas_get_their_own_names_and_ports_and_the_first_keeps_the_services():
    orders = ServiceSpec("orders", "waybill.orders", ports.ORDERS, replicas=3)

    instances = orders.instances({})

    assert [i.name for i in instances] == ["orders", "orders-2", "orders-3"]
    assert [i.port for i in instances] == [ports.ORDERS + k * REPLICA_PORT_STEP for k in range(3)]
    taken = {*ports.SERVICE_PORTS.values(), ports.SANDBOX, ports.SANDBOX_SMTP}
    assert not {i.port for i in instances[1:]} & taken


def test_an_unknown_service_is_named_with_the_ones_there_are():
    with pytest.raises(
        KeyError, match=r"audit.*sandbox, orders, payments, shipping, notifier, monitor"
    ):
        service("audit")


def test_the_sandbox_smtp_server_is_a_listener_on_its_default_port_from_the_ports_module():
    assert service("sandbox").listeners == (
        Listener("WAYBILL_SANDBOX_SMTP_PORT", ports.SANDBOX_SMTP),
    )
    assert all(not spec.listeners for spec in SERVICES if spec.name != "sandbox")
