"""Reading a waybill.dlq record into a dead letter: the spec's headers, and the fallback for
records dead-lettered before the runtime wrote them."""

from __future__ import annotations

from dataclasses import dataclass, field

from waybill.monitor.letters import read_dead_letter
from waybill.monitor.taxonomy import FAILURE_TYPES, USUAL_REMEDIATION, failure_type_of


@dataclass
class Raw:
    headers: list[tuple[str, bytes]]
    key: bytes | None = b"ord_1"
    value: bytes | None = b'{"order_id":"ord_1"}'
    topic: str = "waybill.dlq"
    partition: int = 0
    offset: int = 7
    extra: dict[str, str] = field(default_factory=dict)


def record(**dlq: str) -> Raw:
    ce = [("ce_id", b"e1"), ("ce_type", b"order.cancelled"), ("ce_tenantid", b"t1")]
    return Raw([*ce, *((f"dlq_{k}", v.encode()) for k, v in dlq.items())])


def test_the_new_headers_are_taken_as_they_are():
    letter = read_dead_letter(
        record(
            failure_type="transient_network",
            confidence="0.90",
            remediation="retry_immediately",
            fingerprint="abcdef0123456789",
            retry_of="dlq_x",
        ),
        operator_tenant="default",
    )

    assert letter.fields["failure_type"] == "transient_network"
    assert letter.fields["confidence"] == 0.9
    assert letter.fields["remediation"] == "retry_immediately"
    assert letter.fields["fingerprint"] == "abcdef0123456789"
    assert letter.retry_of == "dlq_x"
    assert letter.fields["record_headers"] == [
        ["ce_id", "e1"],
        ["ce_type", "order.cancelled"],
        ["ce_tenantid", "t1"],
    ]


def test_an_old_record_gets_the_nearest_type_half_confidence_and_its_usual_remediation():
    letter = read_dead_letter(
        record(failure_class="external_service", error="httpx.ConnectError: refused"),
        operator_tenant="default",
    )

    assert letter.fields["failure_type"] == "external_service_unavailable"
    assert letter.fields["confidence"] == 0.5
    assert letter.fields["remediation"] == "contact_external_service"
    assert letter.fields["exception_type"] == "httpx.ConnectError"
    assert len(letter.fields["fingerprint"]) == 16


def test_the_fallback_fingerprint_groups_one_failure_of_one_group():
    def fingerprint(**dlq: str) -> str:
        base = {"error": "ValueError: x", "original_topic": "waybill.orders.events"}
        return str(
            read_dead_letter(record(**{**base, **dlq}), operator_tenant="d").fields["fingerprint"]
        )

    assert fingerprint(consumer_group="payments") == fingerprint(consumer_group="payments")
    assert fingerprint(consumer_group="payments") != fingerprint(consumer_group="shipping")


def test_a_record_without_a_tenant_belongs_to_the_operator_tenant():
    raw = Raw([("dlq_error", b"Boom: x")])

    assert read_dead_letter(raw, operator_tenant="ops").fields["tenant_id"] == "ops"


def test_every_type_has_a_usual_remediation_and_unknown_values_are_unknown():
    assert len(FAILURE_TYPES) == 15
    assert set(USUAL_REMEDIATION) == set(FAILURE_TYPES)
    assert failure_type_of("not_a_type") == "unknown"
    assert failure_type_of(None) == "unknown"
