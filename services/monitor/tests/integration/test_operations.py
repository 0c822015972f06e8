"""The monitor's operations side on real Kafka, PostgreSQL and HTTP: bulk jobs on the work
queue (dry run, abandon by filter, cancel), the CSV export, retention, consumer lag, the
services' metrics and the gathered work queues."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from tests.monitor_stack import dead_letter

from waybill.common.contracts.orders import OrderCancelled
from waybill.common.envelope import EventEnvelope
from waybill.common.settings import service_database
from waybill.common.topics import retry_topic
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, read_records
from waybill.devstack.testing import Infra, Tenant

pytestmark = pytest.mark.infra


def poisoned(tenant_id: str) -> EventEnvelope:
    order_id = f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason="poisoned")
    data = {**event.model_dump(mode="json"), "__poison__": "payments"}
    return envelope(event, tenant_id=tenant_id, subject=order_id, sequence=2, data=data)


async def listed(operator: Tenant, count: int, **filters: str) -> list[dict[str, Any]]:
    async def page() -> list[dict[str, Any]]:
        answer = await operator.admin.get("/api/dlq", params=filters)
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]  # type: ignore[no-any-return]

    return await eventually(page, until=lambda items: len(items) == count, what="dead letters")


async def letters(infra: Infra, operator: Tenant, count: int, **dlq: str) -> list[dict[str, Any]]:
    """``count`` dead letters with these headers, oldest first (as a bulk job works them)."""
    for _ in range(count):
        await dead_letter(infra, poisoned(operator.id), **dlq)
    filters = {"fingerprint": dlq["fingerprint"]} if "fingerprint" in dlq else {}
    found = await listed(operator, count=count, **filters)
    return sorted(found, key=lambda letter: (letter["created_at"], letter["id"]))


def fingerprint() -> str:
    return uuid.uuid4().hex[:16]


async def job_of(operator: Tenant, job_id: str, until: Any, what: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        answer = await operator.admin.get(f"/api/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    return await eventually(probe, until=until, what=what)


async def waiting_on_lock(conn: asyncpg.Connection, table: str) -> int:
    """How many other sessions wait for a lock in a statement on ``table``. (``conn`` may be
    inside a transaction: the activity snapshot it would keep is dropped first.)"""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    found = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE $1 AND pid <> pg_backend_pid()",
        f"%{table}%",
    )
    return int(found)


@pytest.fixture
async def monitor_db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.settings().asyncpg_dsn(service_database("monitor")))
    yield conn
    await conn.close()


async def test_a_bulk_dry_run_counts_the_pending_selection_and_creates_nothing(
    infra: Infra, operator: Tenant
):
    mark = fingerprint()
    chosen = await letters(infra, operator, 3, fingerprint=mark)
    await operator.admin.post(f"/api/dlq/{chosen[0]['id']}/abandon")

    by_filter = await operator.admin.post(
        "/api/dlq/bulk",
        json={"filter": {"fingerprint": mark}, "action": "retry", "dry_run": True},
    )
    by_ids = await operator.admin.post(
        "/api/dlq/bulk",
        json={
            "ids": [letter["id"] for letter in chosen[:2]],
            "filter": {"fingerprint": mark},
            "action": "abandon",
            "dry_run": True,
        },
    )
    neither = await operator.admin.post("/api/dlq/bulk", json={"action": "retry"})

    assert (by_filter.status_code, by_filter.json()) == (200, {"count": 2})  # pending only
    assert (by_ids.status_code, by_ids.json()) == (200, {"count": 1})
    assert neither.status_code == 422
    assert neither.json()["code"] == "VALIDATION_ERROR"
    statuses = [letter["status"] for letter in await listed(operator, 3, fingerprint=mark)]
    assert sorted(statuses) == ["abandoned", "pending", "pending"]


async def test_a_bulk_abandon_by_filter_is_a_job_that_abandons_each_with_its_audit(
    infra: Infra, operator: Tenant, other: Tenant
):
    mark = fingerprint()
    chosen = await letters(infra, operator, 3, fingerprint=mark)
    (bystander,) = await letters(infra, operator, 1, fingerprint=fingerprint())

    answer = await operator.admin.post(
        "/api/dlq/bulk", json={"filter": {"fingerprint": mark}, "action": "abandon"}
    )

    assert answer.status_code == 202, answer.text
    job_id, count = answer.json()["job_id"], answer.json()["count"]
    assert count == 3
    job = await job_of(
        operator, job_id, lambda j: j["status"] == "succeeded", "the bulk job succeeded"
    )
    assert (job["total"], job["processed"], job["succeeded"], job["failed"]) == (3, 3, 3, 0)
    for letter in chosen:
        detail = (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()
        assert detail["status"] == "abandoned"
        (entry,) = detail["audit"]
        assert (entry["action"], entry["detail"]) == ("abandoned", {"job_id": job_id})
        assert entry["actor"] not in ("", "monitor")
    assert (await operator.admin.get(f"/api/dlq/{bystander['id']}")).json()["status"] == "pending"
    # Another tenant's admins know nothing of the job.
    assert (await other.admin.get(f"/api/jobs/{job_id}")).json()["code"] == "JOB_NOT_FOUND"
    refused = await other.admin.post(f"/api/jobs/{job_id}/cancel")
    assert refused.status_code == 404
    finished = await operator.admin.post(f"/api/jobs/{job_id}/cancel")
    assert (finished.status_code, finished.json()["code"]) == (409, "JOB_ALREADY_FINISHED")


async def test_a_cancelled_running_job_stops_before_its_next_dead_letter(
    infra: Infra, operator: Tenant, monitor_db: asyncpg.Connection
):
    mark = fingerprint()
    first, second, third = await letters(infra, operator, 3, fingerprint=mark)
    # Hold the second dead letter: the job does the first, then waits on the second.
    held = monitor_db.transaction()
    await held.start()
    await monitor_db.execute("SELECT 1 FROM dead_letters WHERE id = $1 FOR UPDATE", second["id"])
    try:
        created = await operator.admin.post(
            "/api/dlq/bulk", json={"filter": {"fingerprint": mark}, "action": "abandon"}
        )
        job_id = created.json()["job_id"]
        await job_of(operator, job_id, lambda j: j["processed"] == 1, "the first item done")
        cancel = asyncio.create_task(operator.admin.post(f"/api/jobs/{job_id}/cancel"))

        async def cancel_waits_or_done() -> bool:
            waiting = await waiting_on_lock(monitor_db, "dlq_jobs")
            return cancel.done() or waiting >= 1

        await eventually(cancel_waits_or_done, what="the cancel reached the job's lock")
    finally:
        await held.rollback()
    answer = await cancel

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    job = (await operator.admin.get(f"/api/jobs/{job_id}")).json()
    assert job["status"] == "cancelled"
    assert job["total"] == 3
    assert job["processed"] == job["succeeded"] < 3
    assert (await operator.admin.get(f"/api/dlq/{first['id']}")).json()["status"] == "abandoned"
    assert (await operator.admin.get(f"/api/dlq/{third['id']}")).json()["status"] == "pending"
    again = await operator.admin.post(f"/api/jobs/{job_id}/cancel")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")


async def test_the_csv_export_streams_one_row_per_dead_letter_of_the_filter(
    infra: Infra, operator: Tenant
):
    mark = fingerprint()
    chosen = await letters(infra, operator, 3, fingerprint=mark, error="=HYPERLINK(evil)")
    await letters(infra, operator, 1, fingerprint=fingerprint())

    answer = await operator.admin.get("/api/dlq/export.csv", params={"fingerprint": mark})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    listed_count = len(await listed(operator, 3, fingerprint=mark))
    assert len(rows) == listed_count == 3
    assert {row["id"] for row in rows} == {letter["id"] for letter in chosen}
    assert {row["fingerprint"] for row in rows} == {mark}
    assert all(row["status"] == "pending" for row in rows)
    assert all(row["error"] == "'=HYPERLINK(evil)" for row in rows)  # never a formula
    everything = await operator.admin.get("/api/dlq/export.csv")
    assert len(list(csv.DictReader(io.StringIO(everything.text)))) == 4
    bad = await operator.admin.get("/api/dlq/export.csv", params={"status": "lost"})
    assert bad.status_code == 422


async def test_retention_deletes_old_finished_dead_letters_and_never_an_unresolved_one(
    infra: Infra, operator: Tenant, monitor_db: asyncpg.Connection
):
    pending, retrying, abandoned, recent = await letters(
        infra, operator, 4, fingerprint=fingerprint()
    )
    await operator.admin.post(f"/api/dlq/{retrying['id']}/retry", json={})
    await operator.admin.post(f"/api/dlq/{abandoned['id']}/abandon")
    await operator.admin.post(f"/api/dlq/{recent['id']}/abandon")
    old = [pending["id"], retrying["id"], abandoned["id"]]
    await monitor_db.execute(
        "UPDATE dead_letters SET updated_at = now() - interval '40 days', "
        "created_at = now() - interval '40 days' WHERE id = ANY($1)",
        old,
    )

    async def abandoned_status() -> int:
        return (await operator.admin.get(f"/api/dlq/{abandoned['id']}")).status_code

    await eventually(abandoned_status, until=lambda s: s == 404, what="the old abandoned gone")
    audit_left = await monitor_db.fetchval(
        "SELECT count(*) FROM dead_letter_audit WHERE dead_letter_id = $1", abandoned["id"]
    )
    assert audit_left == 0
    kept = {
        letter["id"]: (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()["status"]
        for letter in (pending, retrying, recent)
    }
    assert kept == {pending["id"]: "pending", retrying["id"]: "retrying", recent["id"]: "abandoned"}


async def test_the_overview_shows_lag_per_group_and_partition_for_uncommitted_records(
    infra: Infra, operator: Tenant, monitor_service: Any
):
    topic = await infra.anew_topic("lag", partitions=1)
    group = f"lag-test-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, f"{n}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: 2})  # two records done, three not
    finally:
        await consumer.stop()

    answer = await operator.admin.get("/api/overview")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["consumer_lag"]["status"] == "ok"
    lag = body["consumer_lag"]["groups"][group]
    assert lag["total"] == 3
    assert lag["partitions"] == [
        {"topic": topic, "partition": 0, "committed": 2, "end": 5, "lag": 3}
    ]
    # The services' metrics: orders answers, the stopped ones are unknown.
    assert body["outbox_backlog"]["orders"]["status"] == "ok"
    assert body["outbox_backlog"]["payments"] == {
        "status": "unknown",
        "outbox_backlog": None,
        "error": "ConnectError",
    }
    assert body["circuit_breakers"]["shipping"]["status"] == "unknown"
    assert body["service_health"]["status"] == "degraded"
    assert body["service_health"]["services"]["notifier"]["status"] == "unreachable"
    metrics = (await operator.admin.get(f"{monitor_service.url}/metrics")).text
    assert f'waybill_monitor_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 3.0' in (
        metrics
    )


async def test_the_queues_view_gathers_every_services_work_queues(infra: Infra, operator: Tenant):
    mark = fingerprint()
    await letters(infra, operator, 1, fingerprint=mark)
    created = await operator.admin.post(
        "/api/dlq/bulk",
        json={"filter": {"fingerprint": mark}, "action": "abandon", "priority": "critical"},
    )
    job_id = created.json()["job_id"]
    await job_of(operator, job_id, lambda j: j["status"] == "succeeded", "the job done")

    answer = await operator.admin.get("/api/queues")

    assert answer.status_code == 200, answer.text
    services = answer.json()["services"]
    assert set(services) == {"orders", "payments", "shipping", "notifier", "monitor"}
    monitor = services["monitor"]
    assert monitor["status"] == "ok"
    assert [queue["name"] for queue in monitor["queues"]] == ["dlq-bulk"]
    (ran,) = [j for j in monitor["recent_jobs"] if j["key"] == job_id]
    assert (ran["status"], ran["priority"]) == ("done", 2)
    assert services["orders"]["status"] == "none"  # orders has no work queues
    assert services["payments"]["status"] == "unknown"  # stopped in this session
    own = await operator.admin.get("/admin/queues")
    assert own.status_code == 200
    assert [q["name"] for q in own.json()["queues"]] == ["dlq-bulk"]
    refused = await operator.service.get("/api/queues")
    assert refused.status_code == 403


async def test_a_bulk_retry_redelivers_each_to_its_group_and_a_critical_job_runs_first(
    infra: Infra, operator: Tenant, monitor_db: asyncpg.Connection
):
    blocker, normal, critical = (fingerprint() for _ in range(3))
    (held_letter,) = await letters(infra, operator, 1, fingerprint=blocker)
    (normal_letter,) = await letters(infra, operator, 1, fingerprint=normal)
    (critical_letter,) = await letters(infra, operator, 1, fingerprint=critical)
    # One bulk job runs at a time: while the first waits on its held dead letter, a normal and
    # then a critical job are queued behind it.
    held = monitor_db.transaction()
    await held.start()
    await monitor_db.execute(
        "SELECT 1 FROM dead_letters WHERE id = $1 FOR UPDATE", held_letter["id"]
    )
    try:
        first = await operator.admin.post(
            "/api/dlq/bulk", json={"filter": {"fingerprint": blocker}, "action": "abandon"}
        )

        async def first_waits() -> int:
            return await waiting_on_lock(monitor_db, "dead_letters")

        await eventually(first_waits, until=lambda n: n >= 1, what="the first job waiting")
        later = await operator.admin.post(
            "/api/dlq/bulk", json={"filter": {"fingerprint": normal}, "action": "retry"}
        )
        urgent = await operator.admin.post(
            "/api/dlq/bulk",
            json={"filter": {"fingerprint": critical}, "action": "retry", "priority": "critical"},
        )
    finally:
        await held.rollback()
    jobs = [answer.json()["job_id"] for answer in (first, later, urgent)]
    for job_id in jobs:
        await job_of(operator, job_id, lambda j: j["status"] == "succeeded", "each job done")

    done_at = dict(
        await monitor_db.fetch(
            "SELECT job_id, done_at FROM dlq_job_items WHERE job_id = ANY($1)", jobs[1:]
        )
    )
    assert done_at[jobs[2]] < done_at[jobs[1]]  # the critical job was worked first
    for letter, priority in ((critical_letter, "critical"), (normal_letter, "normal")):
        detail = (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()
        assert detail["status"] == "retrying"
        (entry,) = detail["audit"]
        assert entry["action"] == "retried"
        assert entry["detail"]["priority"] == priority
        assert entry["detail"]["topic"] == retry_topic("payments")
        (record,) = await read_records(
            infra.bootstrap_servers,
            retry_topic("payments"),
            lambda r, lid=letter["id"]: r.headers.get("dlq_retry_id") == lid,
        )
        assert record.headers["dlq_retry_priority"] == priority
