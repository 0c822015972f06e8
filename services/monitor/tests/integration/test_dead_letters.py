"""Dead letters in the monitor: records of waybill.dlq in, retries to the failing group out."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from tests.monitor_stack import dead_letter, produce, retry_outcome

from waybill.common.auth import issue_key
from waybill.common.contracts.orders import OrderCancelled
from waybill.common.envelope import EventEnvelope
from waybill.common.topics import RETRY_OUTCOMES, retry_topic
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, read_records
from waybill.devstack.testing import Infra, ServiceProcess, Tenant

pytestmark = pytest.mark.infra


def poisoned(tenant_id: str) -> EventEnvelope:
    order_id = f"ord_{uuid.uuid4().hex}"
    event = OrderCancelled(order_id=order_id, reason="poisoned")
    data = {**event.model_dump(mode="json"), "__poison__": "payments"}
    return envelope(event, tenant_id=tenant_id, subject=order_id, sequence=2, data=data)


async def listed(operator: Tenant, count: int = 1, **filters: str) -> list[dict[str, Any]]:
    async def page() -> list[dict[str, Any]]:
        answer = await operator.admin.get("/api/dlq", params=filters)
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]  # type: ignore[no-any-return]

    return await eventually(page, until=lambda items: len(items) == count, what="dead letters")


async def one_letter(infra: Infra, operator: Tenant, **dlq: str) -> dict[str, Any]:
    record = poisoned(operator.id)
    await dead_letter(infra, record, **dlq)
    (letter,) = await listed(operator)
    return letter


async def status_of(operator: Tenant, letter_id: str) -> str:
    return (await operator.admin.get(f"/api/dlq/{letter_id}")).json()["status"]  # type: ignore[no-any-return]


async def test_a_dead_letter_is_listed_with_its_fields_original_record_and_group(
    infra: Infra, operator: Tenant
):
    record = poisoned(operator.id)
    fingerprint = uuid.uuid4().hex[:16]
    extra = {
        "failure_type": "business_logic_violation",
        "confidence": "1.00",
        "remediation": "escalate_to_admin",
        "fingerprint": fingerprint,
        "exception_type": "waybill.common.consumer.processor.PoisonEvent",
        "stack": "Traceback (most recent call last): ...",
    }
    await dead_letter(infra, record, **extra)
    await dead_letter(infra, poisoned(operator.id), **extra)

    letters = await listed(operator, count=2, fingerprint=fingerprint, consumer_group="payments")
    letter = next(item for item in letters if item["event_id"] == str(record.id))
    assert letter["kind"] == "consumer"
    assert letter["status"] == "pending"
    assert (letter["service"], letter["consumer_group"]) == ("payments", "payments")
    assert letter["event_type"] == "order.cancelled"
    assert letter["original_topic"] == "waybill.orders.events"
    assert (letter["failure_type"], letter["confidence"]) == ("business_logic_violation", 1.0)
    assert letter["remediation"] == "escalate_to_admin"
    assert letter["exception_type"].endswith("PoisonEvent")
    detail = (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()
    assert detail["record"]["value"]["__poison__"] == "payments"
    assert detail["record"]["key"] == record.subject
    assert ["ce_id", str(record.id)] in detail["record"]["headers"]
    assert not any(name.startswith("dlq_") for name, _ in detail["record"]["headers"])
    assert detail["stack"].startswith("Traceback")
    groups = (await operator.admin.get("/api/dlq/groups")).json()["items"]
    assert [(g["fingerprint"], g["count"], g["pending"]) for g in groups] == [(fingerprint, 2, 2)]
    assert groups[0]["first_seen"] <= groups[0]["last_seen"]


async def test_a_record_without_the_new_headers_gets_the_fallback_taxonomy(
    infra: Infra, operator: Tenant
):
    letter = await one_letter(infra, operator, failure_class="business_rule")

    assert letter["failure_type"] == "business_logic_violation"
    assert letter["confidence"] == 0.5
    assert letter["remediation"] == "escalate_to_admin"
    assert len(letter["fingerprint"]) == 16
    assert letter["exception_type"] == "ValueError"


async def test_abandon_twice_answers_409_not_pending_and_audits_who(infra: Infra, operator: Tenant):
    letter = await one_letter(infra, operator)

    first = await operator.admin.post(f"/api/dlq/{letter['id']}/abandon")
    second = await operator.admin.post(f"/api/dlq/{letter['id']}/abandon")

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "abandoned"
    assert second.status_code == 409
    assert second.headers["content-type"].startswith("application/problem+json")
    assert second.json()["code"] == "DEAD_LETTER_NOT_PENDING"
    retry = await operator.admin.post(f"/api/dlq/{letter['id']}/retry", json={})
    assert retry.json()["code"] == "DEAD_LETTER_NOT_PENDING"
    audit = (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()["audit"]
    assert [entry["action"] for entry in audit] == ["abandoned"]
    assert audit[0]["actor"] not in ("", "monitor")


async def test_a_retry_goes_to_the_failing_groups_retry_topic_and_its_outcome_resolves_it(
    infra: Infra, operator: Tenant
):
    letter = await one_letter(infra, operator)
    lid = letter["id"]

    answer = await operator.admin.post(f"/api/dlq/{lid}/retry", json={"priority": "high"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "retrying"
    (retried,) = await read_records(
        infra.bootstrap_servers,
        retry_topic("payments"),
        lambda r: r.headers.get("dlq_retry_id") == lid,
    )
    assert retried.headers["dlq_retry_priority"] == "high"
    assert retried.headers["ce_id"] == letter["event_id"]
    assert "dlq_error" not in retried.headers
    assert retried.data["__poison__"] == "payments"  # unedited: the record as it was
    others = await read_records(
        infra.bootstrap_servers,
        retry_topic("orders"),
        lambda r: r.headers.get("dlq_retry_id") == lid,
    )
    assert others == []
    await produce(
        infra,
        RETRY_OUTCOMES,
        key=lid.encode(),
        value=json.dumps(retry_outcome(lid, "payments")).encode(),
    )
    await eventually(lambda: status_of(operator, lid), until="resolved".__eq__, what="resolved")
    audit = (await operator.admin.get(f"/api/dlq/{lid}")).json()["audit"]
    assert [(e["action"], e["actor"] == "monitor") for e in audit] == [
        ("retried", False),
        ("resolved", True),
    ]


async def test_a_retry_that_fails_again_sets_the_same_dead_letter_back_to_pending(
    infra: Infra, operator: Tenant
):
    record = poisoned(operator.id)
    await dead_letter(infra, record)
    (letter,) = await listed(operator)
    await operator.admin.post(f"/api/dlq/{letter['id']}/retry", json={})

    await dead_letter(infra, record, retry_of=letter["id"], attempts="1")

    async def again() -> dict[str, Any]:
        return (await operator.admin.get(f"/api/dlq/{letter['id']}")).json()  # type: ignore[no-any-return]

    recurred = await eventually(again, until=lambda d: d["status"] == "pending", what="pending")
    assert recurred["recurred"] is True
    assert recurred["attempts"] == letter["attempts"] + 1
    assert [e["action"] for e in recurred["audit"]] == ["retried", "recurred"]
    assert len(await listed(operator)) == 1  # no second dead letter


async def test_edited_data_is_validated_against_the_event_schema(infra: Infra, operator: Tenant):
    letter = await one_letter(infra, operator)
    lid = letter["id"]

    invalid = await operator.admin.post(
        f"/api/dlq/{lid}/retry", json={"data": {"order_id": 42, "reason": "fixed"}}
    )

    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["code"] == "INVALID_EVENT_DATA"
    assert await status_of(operator, lid) == "pending"  # changed nothing
    fixed = {"order_id": f"ord_{uuid.uuid4().hex}", "reason": "fixed"}
    valid = await operator.admin.post(f"/api/dlq/{lid}/retry", json={"data": fixed})
    assert valid.status_code == 200, valid.text
    (retried,) = await read_records(
        infra.bootstrap_servers,
        retry_topic("payments"),
        lambda r: r.headers.get("dlq_retry_id") == lid,
    )
    assert retried.data == fixed
    (entry,) = (await operator.admin.get(f"/api/dlq/{lid}")).json()["audit"]
    assert entry["detail"]["data"]["after"] == fixed
    assert entry["detail"]["data"]["before"]["__poison__"] == "payments"


async def test_only_admins_of_the_tenant_see_its_dead_letters(
    infra: Infra, operator: Tenant, other: Tenant
):
    letter = await one_letter(infra, operator)
    lid = letter["id"]

    assert (await operator.service.get("/api/dlq")).status_code == 403
    assert (await operator.service.get("/api/overview")).status_code == 403
    assert (await operator.agent.post(f"/api/dlq/{lid}/abandon")).status_code == 403
    for answer in (
        await other.admin.get(f"/api/dlq/{lid}"),
        await other.admin.post(f"/api/dlq/{lid}/abandon"),
        await other.admin.post(f"/api/dlq/{lid}/retry", json={}),
    ):
        assert answer.status_code == 404
        assert answer.json()["code"] == "DEAD_LETTER_NOT_FOUND"
    assert (await other.admin.get("/api/dlq")).json()["items"] == []
    assert await status_of(operator, lid) == "pending"


async def test_a_record_without_a_tenant_goes_to_the_operator_tenant(
    infra: Infra, monitor_service: ServiceProcess
):
    import httpx

    record = poisoned("ignored")
    key, value, headers = record.to_kafka()
    headers = [(k, v) for k, v in headers if k != "ce_tenantid"]
    marker = uuid.uuid4().hex[:16]
    await produce(
        infra,
        "waybill.dlq",
        key=key,
        value=value,
        headers=[*headers, ("dlq_fingerprint", marker.encode()), ("dlq_error", b"Boom: x")],
    )
    issued = await issue_key(infra.settings(), tenant_id="default", role="admin")
    async with httpx.AsyncClient(
        base_url=monitor_service.url, headers={"Authorization": f"Bearer {issued.key}"}
    ) as admin:

        async def mine() -> list[Any]:
            answer = await admin.get("/api/dlq", params={"fingerprint": marker})
            return answer.json()["items"]  # type: ignore[no-any-return]

        (letter,) = await eventually(mine, what="the operator tenant's dead letter")
    assert letter["consumer_group"] == "unknown"
