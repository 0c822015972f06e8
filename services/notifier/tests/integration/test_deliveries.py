"""Standard Webhooks deliveries to a real receiver: signed so the `standardwebhooks` library
verifies them (with the old and the new secret after a rotation), one webhook-id per message;
a failing receiver gets the schedule's attempts and then the message fails; 410 disables the
endpoint at once. Every final outcome is an event of the endpoint."""

from __future__ import annotations

import uuid

from standardwebhooks import Webhook
from tests.notifier_stack import Receiver, cancel_an_order, create_endpoint, deliveries_of

from waybill.common import topics
from waybill.common.failures.fingerprint import delivery_fingerprint
from waybill.devstack.eventually import eventually
from waybill.devstack.records import read_records
from waybill.devstack.testing import Infra, Tenant


async def test_a_receiver_verifies_each_message_with_the_library_and_after_a_rotation(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/ok"
    endpoint = await create_endpoint(backend, receiver.url(path))
    order_id = await cancel_an_order(backend, infra)

    first = await eventually(lambda: receiver.at(path), timeout_s=30, what="the first delivery")
    payload = Webhook(endpoint["secret"]).verify(first[0].body, first[0].headers)
    assert payload["type"] == "order.cancelled" and payload["data"]["order_id"] == order_id
    assert first[0].headers["webhook-id"].startswith("msg_")

    rotated = (
        await backend.service.post(f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
    ).json()
    await cancel_an_order(backend, infra)
    both = await eventually(
        lambda: receiver.at(path), until=lambda r: len(r) == 2, timeout_s=30, what="the second"
    )
    second = both[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 2  # old and new, space-separated
    Webhook(endpoint["secret"]).verify(second.body, second.headers)
    Webhook(rotated["secret"]).verify(second.body, second.headers)

    items = await eventually(
        lambda: deliveries_of(backend, endpoint),
        until=lambda d: len(d) == 2 and all(x["status"] == "succeeded" for x in d),
        timeout_s=30,
        what="both succeeded",
    )
    assert {x["message_id"] for x in items} == {r.headers["webhook-id"] for r in both}
    assert all(len(x["attempts"]) == 1 and x["attempts"][0]["status_code"] == 200 for x in items)


async def test_a_failing_receiver_gets_the_schedule_then_the_message_fails(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/fail"
    endpoint = await create_endpoint(backend, receiver.url(path))
    await cancel_an_order(backend, infra)

    items = await eventually(
        lambda: deliveries_of(backend, endpoint),
        until=lambda d: bool(d) and d[0]["status"] == "failed",
        timeout_s=60,
        what="the message failed",
    )

    attempts = items[0]["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 500]  # first + the 2 retries
    assert {a["error_class"] for a in attempts} == {"http_5xx"}
    seen = receiver.at(path)
    assert len({r.headers["webhook-id"] for r in seen}) == 1 and len(seen) == 3
    gaps = [
        (b - a).total_seconds()
        for a, b in zip(
            [_at(x) for x in attempts[:-1]], [_at(x) for x in attempts[1:]], strict=True
        )
    ]
    # 1 s +-10 % each, plus a slow machine's second.
    assert all(0.8 <= gap <= 2.5 for gap in gaps), gaps
    outcomes = await _endpoint_events(infra, endpoint["id"])
    assert outcomes == ["webhook.delivery_failed"]

    # The failed message is a dead letter of kind delivery: the monitor retries it as a replay.
    message_id = items[0]["id"]
    (dead,) = await eventually(
        lambda: read_records(
            infra.bootstrap_servers, topics.DEAD_LETTERS, lambda r: r.key == message_id.encode()
        ),
        timeout_s=30,
        what="the delivery's dead letter",
    )
    assert dead.headers["dlq_kind"] == "delivery"
    assert dead.headers["dlq_delivery_id"] == message_id
    assert dead.headers["dlq_endpoint_id"] == endpoint["id"]
    assert dead.headers["dlq_consumer_group"] == "notifier-deliveries"
    assert dead.headers["dlq_attempts"] == "3"
    assert dead.headers["dlq_error_class"] == "http_5xx"
    assert dead.headers["dlq_failure_type"] == "external_service_unavailable"
    assert dead.headers["dlq_failure_class"] == "external_service_unavailable"  # one release
    assert dead.headers["dlq_confidence"] == "0.90"
    assert dead.headers["dlq_remediation"] == "contact_external_service"
    assert dead.headers["dlq_fingerprint"] == delivery_fingerprint(
        error_class="http_5xx", endpoint_id=endpoint["id"]
    )
    assert "dlq_retry_of" not in dead.headers
    assert dead.headers["ce_tenantid"] == backend.id
    assert dead.headers["ce_type"] == "order.cancelled"
    assert dead.data["type"] == "order.cancelled"  # the body the receiver was sent


async def test_410_gone_disables_the_endpoint_at_once(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/gone"
    endpoint = await create_endpoint(backend, receiver.url(path))
    await cancel_an_order(backend, infra)

    disabled = await eventually(
        lambda: backend.service.get(f"/webhook-endpoints/{endpoint['id']}"),
        until=lambda r: r.json()["status"] == "disabled",
        timeout_s=30,
        what="disabled",
    )

    assert "410" in disabled.json()["disabled_reason"]
    assert len(receiver.at(path)) == 1
    events = await eventually(
        lambda: _endpoint_events(infra, endpoint["id"]),
        until=lambda e: len(e) == 2,
        timeout_s=30,
        what="the endpoint's events",
    )
    assert events == ["webhook.endpoint_disabled", "webhook.delivery_failed"]


def _at(attempt: dict):
    from datetime import datetime

    return datetime.fromisoformat(attempt["at"])


async def _endpoint_events(infra: Infra, endpoint_id: str) -> list[str]:
    records = await read_records(
        infra.bootstrap_servers, topics.NOTIFIER_EVENTS, lambda r: r.key == endpoint_id.encode()
    )
    return [
        r.headers["ce_type"] for r in sorted(records, key=lambda r: int(r.headers["ce_sequence"]))
    ]


async def test_a_recovered_receiver_gets_replays_and_recoveries_with_the_same_webhook_id(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/fail"
    endpoint = await create_endpoint(backend, receiver.url(path))
    await cancel_an_order(backend, infra)
    await cancel_an_order(backend, infra)
    failed = await eventually(
        lambda: deliveries_of(backend, endpoint),
        until=lambda d: len(d) == 2 and all(x["status"] == "failed" for x in d),
        timeout_s=60,
        what="both messages failed",
    )
    receiver.answer(path, 200)  # the receiver is fixed

    replayed = await backend.service.post(f"/deliveries/{failed[0]['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    await eventually(
        lambda: deliveries_of(backend, endpoint),
        until=lambda d: {x["id"]: x["status"] for x in d}[failed[0]["id"]] == "succeeded",
        timeout_s=30,
        what="the replay succeeded",
    )
    since = min(x["created_at"] for x in failed)
    dry = await backend.service.post(
        f"/webhook-endpoints/{endpoint['id']}/recover", json={"since": since, "dry_run": True}
    )
    assert dry.json() == {"count": 1}
    recovered = await backend.service.post(
        f"/webhook-endpoints/{endpoint['id']}/recover", json={"since": since}
    )
    assert recovered.json() == {"count": 1}
    await eventually(
        lambda: deliveries_of(backend, endpoint),
        until=lambda d: all(x["status"] == "succeeded" for x in d),
        timeout_s=30,
        what="the recovered message succeeded",
    )
    ok = [r for r in receiver.at(path) if r.headers["webhook-id"] in {x["id"] for x in failed}]
    assert {r.headers["webhook-id"] for r in ok} == {x["id"] for x in failed}
    pending_again = await backend.service.post(f"/deliveries/msg_{'0' * 32}/replay")
    assert (pending_again.status_code, pending_again.json()["code"]) == (404, "DELIVERY_NOT_FOUND")
