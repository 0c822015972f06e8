"""What the monitor's API returns (pydantic, documented in the OpenAPI)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from waybill.common.queue import JobSummary
from waybill.common.queue.admin import QueueView


def _m(row: Any) -> Any:
    return getattr(row, "_mapping", row)


class DeadLetterView(BaseModel):
    id: str = Field(description="the monitor's id (dlq_...)")
    kind: Literal["consumer", "delivery"]
    status: Literal["pending", "retrying", "resolved", "abandoned"]
    service: str
    consumer_group: str
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    event_id: str | None
    event_type: str | None
    error: str
    exception_type: str | None
    failure_type: str = Field(description="one of the 15 failure types of the taxonomy")
    confidence: float = Field(ge=0, le=1)
    remediation: str = Field(description="one of the 8 remediation actions")
    fingerprint: str
    attempts: int
    retries: int = Field(description="how often it was retried from the monitor")
    recurred: bool = Field(description="it failed again after a retry")
    first_failed_at: datetime
    last_failed_at: datetime
    delivery_id: str | None
    endpoint_id: str | None
    error_class: str | None
    status_code: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> DeadLetterView:
        m = _m(row)
        return cls(**{name: m[name] for name in cls.model_fields})


class OriginalRecord(BaseModel):
    """The record as it was on its topic: what a retry re-delivers."""

    key: str | None = Field(description="UTF-8 text of the key")
    value: Any = Field(description="the value as JSON, or its UTF-8 text if it is not JSON")
    headers: list[tuple[str, str]] = Field(description="its headers (without dlq_*), in order")


class AuditEntry(BaseModel):
    actor: str = Field(description="the API key id, or `monitor` for what the consumer did")
    action: str
    detail: dict[str, Any]
    at: datetime


class DeadLetterDetail(DeadLetterView):
    stack: str | None
    record: OriginalRecord
    audit: list[AuditEntry]

    @classmethod
    def of(cls, row: Any, audit: Any) -> DeadLetterDetail:
        m = _m(row)
        base = DeadLetterView.from_row(row).model_dump()
        record = OriginalRecord(
            key=_text(m["record_key"]),
            value=_value(m["record_value"]),
            headers=[(name, text) for name, text in m["record_headers"]],
        )
        entries = [AuditEntry(**dict(_m(entry))) for entry in audit]
        return cls(**base, stack=m["stack"], record=record, audit=entries)


class GroupView(BaseModel):
    fingerprint: str
    count: int
    pending: int
    first_seen: datetime
    last_seen: datetime
    failure_type: str
    service: str
    consumer_group: str

    @classmethod
    def from_row(cls, row: Any) -> GroupView:
        m = _m(row)
        return cls(**{name: m[name] for name in cls.model_fields})


class Revenue(BaseModel):
    captured_cents: int
    refunded_cents: int
    net_cents: int = Field(description="captured minus refunded")


class WebhookWindow(BaseModel):
    succeeded: int
    failed: int
    success_rate: float | None = Field(description="succeeded / (succeeded + failed); null: none")


class ByStatus(BaseModel):
    by_status: dict[str, int]


class PaymentFigures(ByStatus):
    by_provider: dict[str, dict[str, int]]


class NotificationFigures(BaseModel):
    by_channel: dict[str, dict[str, int]]


class DeadLetterFigures(ByStatus):
    by_failure_type: dict[str, int]


class FeedEvent(BaseModel):
    event_id: str
    type: str
    subject: str
    sequence: int
    time: datetime
    topic: str


class Feed(BaseModel):
    items: list[FeedEvent] = Field(description="the tenant's last 100 events, newest first")


class ServiceHealth(BaseModel):
    status: Literal["healthy", "unhealthy", "unreachable"]
    url: str
    latency_ms: float
    checks: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class HealthView(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: dict[str, ServiceHealth]
    monitor: dict[str, Literal["up", "down"]] = Field(description="the monitor's own checks")


def _text(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode(errors="replace")


def _value(value: bytes | None) -> Any:
    text = _text(value)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class BulkCount(BaseModel):
    count: int = Field(description="pending dead letters the selection has")


class BulkJobCreated(BulkCount):
    job_id: str


class JobView(BaseModel):
    id: str
    action: Literal["retry", "abandon"]
    priority: Literal["normal", "high", "critical"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    total: int
    processed: int
    succeeded: int
    failed: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> JobView:
        m = _m(row)
        return cls(**{name: m[name] for name in cls.model_fields})


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int = Field(description="the group's committed offset")
    end: int = Field(description="the partition's end offset")
    lag: int


class GroupLag(BaseModel):
    total: int
    partitions: list[PartitionLag]


class ConsumerLag(BaseModel):
    status: Literal["ok", "unknown"] = Field(description="unknown: the broker did not answer")
    groups: dict[str, GroupLag] = Field(description="by consumer group (the broker's, any tenant)")
    error: str | None = None


class OutboxBacklog(BaseModel):
    status: Literal["ok", "unknown"] = Field(description="unknown: its /metrics did not answer")
    outbox_backlog: int | None = Field(description="outbox rows not yet published")
    error: str | None = None


class Breakers(BaseModel):
    status: Literal["ok", "unknown"]
    breakers: dict[str, Literal["closed", "half_open", "open", "unknown"]] = Field(
        description="by dependency"
    )
    error: str | None = None


class ConsumerGroupDuplicates(BaseModel):
    """One consumer group's records since its process started (from the service's /metrics)."""

    service: str
    consumer_group: str
    applied: int
    duplicates: int = Field(description="redelivered records the inbox recognised and skipped")
    skipped: int = Field(description="records of types the group does not consume (or unreadable)")
    dead_lettered: int
    duplicate_rate: float = Field(description="duplicates / (applied + duplicates); 0 when none")
    check_p50_ms: float | None = Field(description="duplicate detection (the inbox statement)")
    check_p95_ms: float | None = None


class IntegrationCalls(BaseModel):
    """One service's calls to one third party since its process started (its /metrics)."""

    service: str
    integration: str = Field(description="payment_provider, sms_provider, smtp, webhooks, ...")
    calls: int
    errors: int = Field(description="calls whose outcome is an error class")
    error_rate: float = Field(description="errors / calls; 0 when none")
    p50_ms: float | None = Field(description="call time, interpolated in the histogram buckets")
    p95_ms: float | None = None
    last_error: str | None = Field(description="the last failed call's error class")
    last_error_at: datetime | None = None
    outcomes: dict[str, int] = Field(description="calls by outcome (ok or an error class)")


class PostalCodeLoad(BaseModel):
    postal_code: str
    agents: int = Field(description="active agents serving it")
    active_shipments: int
    capacity: int = Field(description="the sum of its active agents' capacities")
    utilisation: float
    hotspot: bool = Field(description="utilisation above 0.7")


class AgentLoad(BaseModel):
    id: str
    name: str
    active_shipments: int
    capacity: int
    utilisation: float


class CapacityFigures(BaseModel):
    """Shipping's ``GET /capacity``, from its agent and shipment events."""

    postal_codes: list[PostalCodeLoad]
    agents: list[AgentLoad]


class Overview(BaseModel):
    orders: ByStatus
    shipments: ByStatus
    payments: PaymentFigures
    revenue: dict[str, Revenue] = Field(description="by currency")
    webhook_deliveries: dict[Literal["last_hour", "last_24h"], WebhookWindow]
    notifications: NotificationFigures
    dead_letters: DeadLetterFigures
    capacity: CapacityFigures = Field(description="agent capacity and hotspots (from shipping)")
    consumer_lag: ConsumerLag
    outbox_backlog: dict[str, OutboxBacklog] = Field(description="by service")
    circuit_breakers: dict[str, Breakers] = Field(description="by service")
    service_health: HealthView
    idempotency: list[ConsumerGroupDuplicates] = Field(
        default_factory=list, description="per service and consumer group, the monitor's own too"
    )
    integrations: list[IntegrationCalls] = Field(
        default_factory=list, description="per service and third party"
    )


class ServiceQueues(BaseModel):
    status: Literal["ok", "none", "unknown"] = Field(
        description="none: the service has no work queues; unknown: it did not answer"
    )
    queues: list[QueueView]
    recent_jobs: list[JobSummary]
    error: str | None = None


class QueuesOverview(BaseModel):
    services: dict[str, ServiceQueues] = Field(description="by service, the monitor included")
