"""A record of ``waybill.dlq`` read into a dead letter (the header table of the issue-11 spec).

Pure: no I/O. The record's key, value and non-``dlq_`` headers are kept as the original record
(what a retry re-delivers); the ``dlq_*`` headers describe the failure. Headers the consumer
runtime adds in the parallel change (failure type, confidence, remediation, fingerprint,
exception type, stack, retry-of) are read when present and derived when absent.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from waybill.monitor import taxonomy

DLQ_PREFIX = "dlq_"


def new_dead_letter_id() -> str:
    return f"dlq_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class DeadLetterRecord:
    """Everything a dead letter row is made of, read off one ``waybill.dlq`` record."""

    fields: dict[str, Any]  # the dead_letters columns (but id, status and timestamps)
    retry_of: str | None  # the dead letter a failed retry of it came back as

    @property
    def kind(self) -> str:
        return str(self.fields["kind"])

    @property
    def delivery_id(self) -> str | None:
        value = self.fields.get("delivery_id")
        return str(value) if value else None


def headers_text(headers: Any) -> list[tuple[str, str]]:
    """A record's headers as (name, UTF-8 text) pairs, in order."""
    return [
        (str(name), bytes(value or b"").decode(errors="replace")) for name, value in headers or ()
    ]


def read_dead_letter(record: Any, *, operator_tenant: str) -> DeadLetterRecord:
    """The dead letter of ``record`` (anything with topic, partition, offset, key, value,
    headers); a record without a tenant belongs to ``operator_tenant``."""
    pairs = headers_text(record.headers)
    dlq = {name[len(DLQ_PREFIX) :]: text for name, text in pairs if name.startswith(DLQ_PREFIX)}
    original = [[name, text] for name, text in pairs if not name.startswith(DLQ_PREFIX)]
    ce = dict((name, text) for name, text in pairs if name.startswith("ce_"))
    kind = "delivery" if dlq.get("kind") == "delivery" else "consumer"
    failure_type = taxonomy.failure_type_of(dlq.get("failure_type") or dlq.get("failure_class"))
    error = dlq.get("error", "")
    exception_type = dlq.get("exception_type") or _exception_type_of(error)
    group = dlq.get("consumer_group") or "unknown"
    topic = dlq.get("original_topic") or None
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "tenant_id": ce.get("ce_tenantid") or operator_tenant,
        "kind": kind,
        "service": dlq.get("service") or "unknown",
        "consumer_group": group,
        "original_topic": topic,
        "original_partition": _int(dlq.get("original_partition")),
        "original_offset": _int(dlq.get("original_offset")),
        "event_id": ce.get("ce_id"),
        "event_type": ce.get("ce_type"),
        "schema_version": _int(ce.get("ce_schemaversion")),
        "subject": ce.get("ce_subject"),
        "record_key": record.key,
        "record_value": record.value,
        "record_headers": original,
        "error": error,
        "exception_type": exception_type,
        "stack": dlq.get("stack") or None,
        "failure_type": failure_type,
        "confidence": taxonomy.confidence_of(dlq.get("confidence")),
        "remediation": taxonomy.remediation_of(dlq.get("remediation"), failure_type),
        "fingerprint": dlq.get("fingerprint")
        or _fingerprint(kind, exception_type, topic, group, dlq),
        "attempts": _int(dlq.get("attempts")) or 1,
        "first_failed_at": _time(dlq.get("first_failed_at"), now),
        "last_failed_at": _time(dlq.get("last_failed_at"), now),
        "delivery_id": dlq.get("delivery_id") or None,
        "endpoint_id": dlq.get("endpoint_id") or None,
        "error_class": dlq.get("error_class") or None,
        "status_code": _int(dlq.get("status_code")),
        "dlq_topic": record.topic,
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
    }
    return DeadLetterRecord(fields, dlq.get("retry_of") or None)


def _fingerprint(
    kind: str, exception_type: str | None, topic: str | None, group: str, dlq: dict[str, str]
) -> str:
    """The spec's fingerprint, for records dead-lettered before the runtime wrote one: without
    a stack the first frame in our code is unknown, so it is left out."""
    if kind == "delivery":
        parts = ["delivery", dlq.get("error_class", ""), dlq.get("endpoint_id", "")]
    else:
        parts = [exception_type or "", topic or "", group]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _exception_type_of(error: str) -> str | None:
    """``Type`` of an error described as ``Type: message``."""
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip().replace(".", "").isidentifier() else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _time(text: str | None, default: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(text) if text else default
    except ValueError:
        return default
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
