"""A notifier SIGKILLed with customer emails and webhook deliveries in flight: after a restart
every due one completes, no email is sent twice under two Message-IDs (a resend can only be
the same Message-ID: count distinct Message-IDs against notifications), and a webhook repeats
only under the same webhook-id.

The notifier here is a process of its own; the session's notifier (same database, same
consumer group) is stopped meanwhile so that the killed process's work is finished by its
own restart, not by a bystander. The sandbox's SMTP latency knob holds each email at DATA,
so the kill lands between the server's acceptance and our commit for some of them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest
from tests.messaging_stack import CustomerOrder, mails_to, messaging_env, publish_events
from tests.notifier_stack import FAST_NOTIFIER_ENV, Receiver

from waybill.devstack.eventually import eventually
from waybill.devstack.testing import Infra, ServiceProcess, new_tenant, start_service

ORDERS = 12


@pytest.fixture
def own_notifier(
    infra: Infra, notifier_service: ServiceProcess, mail_sandbox: ServiceProcess
) -> Iterator[ServiceProcess]:
    notifier_service.stop()
    env = {**FAST_NOTIFIER_ENV, **messaging_env(mail_sandbox)}
    own = start_service(infra, "notifier", extra_env=env)
    try:
        yield own
    finally:
        own.stop()
        notifier_service.restart()


async def test_a_notifier_killed_mid_send_completes_every_message_once_per_id_after_restart(
    infra: Infra,
    own_notifier: ServiceProcess,
    outside: httpx.AsyncClient,
    receiver: Receiver,
):
    tenant = await new_tenant(infra, own_notifier.url)
    path = f"/{uuid.uuid4().hex}/ok"
    created = await tenant.service.post(
        "/webhook-endpoints", json={"url": receiver.url(path), "event_types": ["order.placed"]}
    )
    assert created.status_code == 201, created.text
    await outside.put("/admin/faults", json={"smtp_latency_ms": 700})
    orders = [CustomerOrder(tenant.id, phone=None) for _ in range(ORDERS)]
    await publish_events(infra, *(o.placed() for o in orders))

    async def accepted() -> int:
        return sum([len(await mails_to(outside, o.email)) for o in orders])

    at_kill = await eventually(
        accepted, until=lambda n: n >= 2, timeout_s=60, interval_s=0.1, what="mail"
    )
    own_notifier.kill()
    assert at_kill < ORDERS  # emails were still in flight when it died
    await outside.put("/admin/faults", json={"smtp_latency_ms": 0})
    own_notifier.restart()

    async def all_sent() -> list[dict]:
        response = await tenant.service.get("/notifications", params={"limit": 200})
        return response.json()["items"]  # type: ignore[no-any-return]

    items = await eventually(
        all_sent,
        until=lambda n: len(n) == ORDERS and all(x["status"] == "sent" for x in n),
        timeout_s=90,
        interval_s=0.3,
        what="every email sent after the restart",
    )
    assert {x["template"] for x in items} == {"order_placed"}

    mails = [m for o in orders for m in await mails_to(outside, o.email)]
    print(f"accepted at the kill: {at_kill}; messages in the sink: {len(mails)}")
    ids_by_recipient: dict[str, set[str]] = defaultdict(set)
    for mail in mails:
        ids_by_recipient[mail["rcpt_tos"][0]].add(mail["message_id"])
    # Each customer got their email under one Message-ID (a resend repeats it, never a new one).
    assert {r: len(ids) for r, ids in ids_by_recipient.items()} == {o.email: 1 for o in orders}
    assert len({m["message_id"] for m in mails}) == len(items) == ORDERS

    deliveries = await eventually(
        lambda: receiver.at(path),
        until=lambda r: len({x.headers["webhook-id"] for x in r}) == ORDERS,
        timeout_s=60,
        what="every webhook delivered",
    )
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for delivery in deliveries:
        bodies[delivery.headers["webhook-id"]].add(delivery.body)
    # A repeated webhook is the same message: same webhook-id, same body.
    assert all(len(b) == 1 for b in bodies.values())
    await tenant.aclose()
