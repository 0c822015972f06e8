"""What keeps one endpoint from hurting the others or itself: ``Retry-After`` honoured, the
per-endpoint rate limit (a sliding one-second window), one slow endpoint holding only its own
slots, the breaker pausing attempts to a dead host, and a receiver's answer read only up to a
size. Real notifier, real receiver over HTTP; conditions are waited for, never slept on."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import uuid
from datetime import datetime

import asyncpg
from standardwebhooks import Webhook
from tests.notifier_stack import Receiver, Reply, cancel_an_order, create_endpoint, deliveries_of

from waybill.devstack.eventually import eventually
from waybill.devstack.testing import Infra, Tenant


def _starts(items: list[dict]) -> list[datetime]:
    return sorted(datetime.fromisoformat(a["at"]) for item in items for a in item["attempts"])


def _all(status: str, count: int):
    return lambda items: len(items) == count and all(i["status"] == status for i in items)


async def test_a_429_with_retry_after_is_not_attempted_again_before_it(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/busy"
    receiver.script(path, [Reply(429, {"retry-after": "3"}), Reply(200)])
    endpoint = await create_endpoint(backend, receiver.url(path))
    await cancel_an_order(backend, infra)

    (item,) = await eventually(
        lambda: deliveries_of(backend, endpoint), until=_all("succeeded", 1), timeout_s=30
    )

    first, second = _starts([item])
    assert [a["status_code"] for a in item["attempts"]] == [429, 200]
    # The schedule says 1 s; the receiver asked for 3.
    assert (second - first).total_seconds() >= 3.0


async def test_rate_limit_per_s_lets_no_second_start_more_than_that_and_drops_nothing(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/ok"
    endpoint = await create_endpoint(backend, receiver.url(path), rate_limit_per_s=5)
    for _ in range(18):  # 18 orders: 18 keys, all due at once
        await cancel_an_order(backend, infra)

    items = await eventually(
        lambda: deliveries_of(backend, endpoint), until=_all("succeeded", 18), timeout_s=60
    )

    starts = _starts(items)
    assert len(starts) == 18  # every message once: waiting is not an attempt
    in_any_second = max(
        sum(1 for t in starts[i:] if (t - s).total_seconds() < 1.0) for i, s in enumerate(starts)
    )
    assert in_any_second <= 5
    assert (starts[-1] - starts[0]).total_seconds() >= 3.0  # 18 at 5/s: four windows at least
    assert len(receiver.at(path)) == 18


async def test_one_slow_endpoint_does_not_delay_the_other_endpoints(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    # More messages to the slow endpoint than the worker has slots (16): without a cap per
    # endpoint they would all be taken by requests that hang until the 15 s timeout.
    slow_path, fast_path = f"/{uuid.uuid4().hex}/slow", f"/{uuid.uuid4().hex}/ok"
    release = threading.Event()
    receiver.script(slow_path, [Reply(200, hold=release)])
    slow = await create_endpoint(backend, receiver.url(slow_path))
    fast = await create_endpoint(backend, receiver.url(fast_path))
    try:
        for _ in range(20):
            await cancel_an_order(backend, infra)

        await eventually(
            lambda: deliveries_of(backend, fast), until=_all("succeeded", 20), timeout_s=60
        )

        # Every fast delivery succeeded while the slow endpoint's first requests still hang:
        # none of its attempts has finished, and it holds only its own slots.
        assert _starts(await deliveries_of(backend, slow)) == []
        assert 1 <= len(receiver.at(slow_path)) <= 4  # WAYBILL_NOTIFIER_ENDPOINT_CONCURRENCY
    finally:
        release.set()
    await eventually(
        lambda: deliveries_of(backend, slow), until=_all("succeeded", 20), timeout_s=90
    )


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections are refused


async def test_the_breaker_pauses_attempts_to_a_dead_host_then_every_message_runs_its_schedule(
    backend: Tenant, infra: Infra
):
    endpoint = await create_endpoint(backend, f"http://127.0.0.1:{_dead_port()}/hook")
    for _ in range(8):
        await cancel_an_order(backend, infra)

    items = await eventually(
        lambda: deliveries_of(backend, endpoint), until=_all("failed", 8), timeout_s=90
    )

    assert all(len(i["attempts"]) == 3 for i in items)  # the breaker's waits cost no attempt
    assert {a["error_class"] for i in items for a in i["attempts"]} == {"connect"}
    starts = _starts(items)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # After five failures in a row the circuit opened: nothing was attempted for its reset
    # (2 s in the test notifier), though the schedule alone retries every second.
    assert max(gaps) >= 1.8, gaps


async def test_an_answer_larger_than_the_limit_is_too_large_and_not_a_success(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/huge"
    receiver.script(path, [Reply(200, body=b"x" * 200_000), Reply(200)])
    endpoint = await create_endpoint(backend, receiver.url(path))
    await cancel_an_order(backend, infra)

    (item,) = await eventually(
        lambda: deliveries_of(backend, endpoint), until=_all("succeeded", 1), timeout_s=30
    )

    first, second = item["attempts"]
    assert (first["status_code"], first["error_class"]) == (200, "too_large")
    assert (second["status_code"], second["error_class"]) == (200, None)


async def test_an_orders_later_event_waits_for_its_earlier_one_and_other_orders_pass(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/ordered"
    endpoint = await create_endpoint(backend, receiver.url(path))
    first_order = await cancel_an_order(backend, infra, sequence=3)
    tries: list[str] = []

    def first_event_fails_twice(body: bytes) -> Reply:
        data = json.loads(body)["data"]
        if data["order_id"] == first_order and data["reason"] == "#3":
            tries.append("#3")
            return Reply(500 if len(tries) <= 2 else 200)
        return Reply(200)

    receiver.respond(path, first_event_fails_twice)
    await eventually(lambda: receiver.at(path), what="the first attempt of the first event")
    await cancel_an_order(backend, infra, first_order, sequence=4)
    other_order = await cancel_an_order(backend, infra, sequence=3)

    await eventually(
        lambda: deliveries_of(backend, endpoint), until=_all("succeeded", 3), timeout_s=30
    )

    seen = [
        (json.loads(r.body)["data"]["order_id"], json.loads(r.body)["data"]["reason"])
        for r in sorted(receiver.at(path), key=lambda r: r.at)
    ]
    assert [reason for order, reason in seen if order == first_order] == ["#3", "#3", "#3", "#4"]
    # The other order waited for none of the first order's retries.
    assert seen.index((other_order, "#3")) < 2


async def test_an_endpoints_own_headers_go_with_every_delivery_and_cannot_replace_ours(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/ok"
    endpoint = await create_endpoint(
        backend,
        receiver.url(path),
        headers={"X-Team": "fulfilment", "webhook-id": "forged", "Content-Type": "text/plain"},
    )
    await cancel_an_order(backend, infra)

    (request,) = await eventually(lambda: receiver.at(path), what="the delivery")

    assert request.headers["x-team"] == "fulfilment"
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    Webhook(endpoint["secret"]).verify(request.body, request.headers)


async def test_an_endpoint_without_a_success_for_the_window_is_disabled_with_its_reason(
    backend: Tenant, infra: Infra, receiver: Receiver
):
    path = f"/{uuid.uuid4().hex}/fail"
    endpoint = await create_endpoint(backend, receiver.url(path))
    # Six days pass (WAYBILL_NOTIFIER_DISABLE_AFTER_S is five): the endpoint's clock, set back.
    conn = await asyncpg.connect(infra.settings().asyncpg_dsn("waybill_notifier"))
    try:
        await conn.execute(
            "UPDATE webhook_endpoints SET created_at = now() - interval '6 days'"
            " WHERE endpoint_id = $1",
            endpoint["id"],
        )
    finally:
        await conn.close()
    await cancel_an_order(backend, infra)

    shown = await eventually(
        lambda: backend.service.get(f"/webhook-endpoints/{endpoint['id']}"),
        until=lambda r: r.json()["status"] == "disabled",
        timeout_s=30,
        what="disabled",
    )

    assert shown.json()["disabled_reason"].startswith("no success for 5 days")
    (item,) = await deliveries_of(backend, endpoint)
    assert item["status"] == "failed" and len(item["attempts"]) == 1  # not the whole schedule
