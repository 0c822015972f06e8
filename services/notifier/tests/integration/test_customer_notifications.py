"""Customer email and SMS end to end: events on Kafka -> the notifier process -> the sandbox's
real SMTP server and SMS provider. Every template arrives with its content; one message per
(event, channel, recipient) whatever is redelivered; 550 fails the email and falls back to
SMS; 451 is retried; a scheduled email waits for its send_at; the delivery code reaches the
customer and nobody else."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from tests.messaging_stack import (
    CustomerOrder,
    mails_to,
    notifications_of,
    publish_events,
    texts_to,
)
from tests.notifier_stack import Receiver

from waybill.common import topics
from waybill.devstack.eventually import eventually
from waybill.devstack.records import read_records
from waybill.devstack.testing import Infra, Tenant


def _settled(items: list[dict], count: int) -> bool:
    return len(items) == count and all(n["status"] != "queued" for n in items)


async def _settle(backend: Tenant, order: CustomerOrder, count: int) -> list[dict]:
    return await eventually(
        lambda: notifications_of(backend.service, order.order_id),
        until=lambda items: _settled(items, count),
        timeout_s=45,
        interval_s=0.2,
        what=f"{count} notifications of {order.order_id} sent or failed",
    )


def _by(items: list[dict]) -> dict[tuple[str, str], dict]:
    return {(n["template"], n["channel"]): n for n in items}


async def test_every_template_reaches_the_customer_with_its_content_and_the_code_only_there(
    backend: Tenant, infra: Infra, outside: httpx.AsyncClient, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/ok"
    created = await backend.service.post(
        "/webhook-endpoints", json={"url": receiver.url(path), "event_types": ["*"]}
    )
    assert created.status_code == 201, created.text
    order = CustomerOrder(backend.id)
    await publish_events(
        infra,
        order.placed(),
        order.paid(),
        order.payment_failed(),
        order.in_transit(1, "314159"),
        order.failed("WEATHER"),
        order.in_transit(2, "271828"),
        order.returned(),
        order.delivered(),
    )

    items = await _settle(backend, order, 8 + 3)
    assert {n["status"] for n in items} == {"sent"}
    assert sorted(_by(items)) == sorted(
        [
            ("order_placed", "email"),
            ("payment_received", "email"),
            ("payment_failed", "email"),
            ("shipped", "email"),
            ("shipped", "sms"),
            ("delivery_failed", "email"),
            ("delivery_failed", "sms"),
            ("delivery_retried", "email"),
            ("delivery_retried", "sms"),
            ("returned", "email"),
            ("delivered", "email"),
        ]
    )
    priorities = {(n["template"], n["channel"]): n["priority"] for n in items}
    assert priorities[("payment_failed", "email")] == "urgent"
    assert priorities[("delivery_failed", "sms")] == "urgent"
    assert priorities[("delivered", "email")] == "low"
    masked = _by(items)[("shipped", "sms")]["recipient"]
    assert masked == "+*******" + order.phone[-4:]  # type: ignore[index]
    assert _by(items)[("shipped", "email")]["recipient"] == f"c***@{order.email.split('@')[1]}"

    mails = {m["subject"]: m for m in await mails_to(outside, order.email)}
    assert len(mails) == 8
    by_subject = {s.split(" ")[0]: m for s, m in mails.items()}
    assert by_subject["We"]["subject"] == f"We received your order {order.order_id}"
    assert "12.50 USD" in by_subject["We"]["text"]
    shipped = mails[f"Your order {order.order_id} is on its way"]
    assert "314159" in shipped["text"] and "314159" in shipped["html"]
    assert shipped["html"].lstrip().startswith("<!doctype html>")
    retried = mails[f"Order {order.order_id} is out for delivery again"]
    assert "271828" in retried["text"] and "attempt 2" in retried["text"]
    failed = mails[f"Action needed: we could not deliver order {order.order_id}"]
    assert "bad weather" in failed["text"]
    assert all(m["text"] and m["html"] for m in mails.values())
    assert len({m["message_id"] for m in mails.values()}) == 8

    texts = [t["body"] for t in await texts_to(outside, order.phone)]  # type: ignore[arg-type]
    assert len(texts) == 3
    assert any("314159" in t for t in texts) and any("271828" in t for t in texts)

    # The code reaches the customer, and nobody else: no API response, job, or webhook body.
    await eventually(
        lambda: receiver.at(path), until=lambda r: len(r) >= 8, timeout_s=30, what="webhooks"
    )
    listed = (await backend.service.get("/notifications", params={"order_id": order.order_id})).text
    queues = await backend.admin.get("/admin/queues")
    assert queues.status_code == 200
    assert {q["name"] for q in queues.json()["queues"]} >= {"deliveries", "emails", "sms"}
    for text in [listed, queues.text, *(r.body.decode() for r in receiver.at(path))]:
        assert "314159" not in text and "271828" not in text
        assert "delivery_code" not in text


async def test_a_shipment_event_before_its_contact_waits_and_a_redelivered_event_sends_once(
    backend: Tenant, infra: Infra, outside: httpx.AsyncClient
):
    order = CustomerOrder(backend.id)
    shipped = order.in_transit(1, "424242")
    await publish_events(infra, shipped, shipped)  # before the order's contact; and again
    placed = order.placed()
    await publish_events(infra, placed, placed)

    items = await _settle(backend, order, 3)
    assert sorted(_by(items)) == [
        ("order_placed", "email"),
        ("shipped", "email"),
        ("shipped", "sms"),
    ]
    await publish_events(infra, shipped, placed)  # redelivered once more, after the fact
    await eventually(
        lambda: notifications_of(backend.service, order.order_id),
        until=lambda n: _settled(n, 3),
        timeout_s=10,
        what="still three",
    )
    assert len(await mails_to(outside, order.email)) == 2
    assert len(await texts_to(outside, order.phone)) == 1  # type: ignore[arg-type]


async def test_a_permanently_refused_email_fails_and_falls_back_to_one_sms(
    backend: Tenant, infra: Infra, outside: httpx.AsyncClient
):
    await outside.put("/admin/faults", json={"smtp_permanent_reject_rate": 1.0})
    order = CustomerOrder(backend.id)
    await publish_events(infra, order.placed(), order.in_transit(1, "111222"))

    items = _by(await _settle(backend, order, 4))
    assert items[("order_placed", "email")]["status"] == "failed"
    assert items[("order_placed", "email")]["attempts"] == 1  # 5xx: never retried
    assert items[("order_placed", "sms")]["status"] == "sent"  # the fallback
    assert items[("shipped", "email")]["status"] == "failed"
    # The shipped SMS was owed anyway: its fallback is the same (event, channel, recipient).
    assert items[("shipped", "sms")]["status"] == "sent"
    texts = await texts_to(outside, order.phone)  # type: ignore[arg-type]
    assert len(texts) == 2
    assert await mails_to(outside, order.email) == []

    failed_id = items[("order_placed", "email")]["id"]
    records = await eventually(
        lambda: read_records(
            infra.bootstrap_servers,
            topics.NOTIFIER_EVENTS,
            lambda r: r.data.get("order_id") == order.order_id,
        ),
        until=lambda found: len(found) == 4,
        timeout_s=30,
        what="four final outcomes",
    )
    outcome = {r.data["notification_id"]: r.headers["ce_type"] for r in records}
    assert outcome[failed_id] == "notification.failed"
    assert sorted(outcome.values()).count("notification.sent") == 2


async def test_a_temporary_smtp_rejection_is_retried_and_one_email_arrives_on_attempt_2(
    backend: Tenant, infra: Infra, outside: httpx.AsyncClient
):
    await outside.put("/admin/faults", json={"smtp_temporary_reject_rate": 1.0})
    order = CustomerOrder(backend.id, phone=None)
    await publish_events(infra, order.placed())
    await eventually(
        lambda: notifications_of(backend.service, order.order_id),
        until=lambda n: len(n) == 1 and n[0]["attempts"] == 1,
        timeout_s=30,
        interval_s=0.05,
        what="the first attempt refused with 451",
    )
    await outside.put("/admin/faults", json={"smtp_temporary_reject_rate": 0.0})

    (email,) = await _settle(backend, order, 1)
    assert email["status"] == "sent" and email["attempts"] == 2
    assert len(await mails_to(outside, order.email)) == 1


async def test_a_scheduled_email_is_not_sent_before_its_send_at(
    backend: Tenant, infra: Infra, outside: httpx.AsyncClient
):
    order = CustomerOrder(backend.id, phone=None)
    await publish_events(infra, order.placed(), order.delivered())  # delivered: held back 2 s

    items = _by(await _settle(backend, order, 2))
    placed, delivered = items[("order_placed", "email")], items[("delivered", "email")]
    send_at = datetime.fromisoformat(delivered["send_at"])
    assert (send_at - datetime.fromisoformat(placed["send_at"])).total_seconds() >= 1.5
    assert datetime.fromisoformat(delivered["sent_at"]) >= send_at
    (mail,) = [m for m in await mails_to(outside, order.email) if "delivered" in m["subject"]]
    assert mail["received_at"] >= send_at.timestamp()


async def test_notifications_are_per_tenant_and_bad_input_is_a_problem(
    backend: Tenant, infra: Infra
):
    bad = await backend.service.get("/notifications", params={"order_id": "nope"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["code"] == "VALIDATION_ERROR"
    assert (await backend.agent.get("/notifications")).status_code == 403
