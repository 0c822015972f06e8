"""The event envelope: CloudEvents 1.0 plus Waybill's extensions, and its Kafka binding.

On the wire (CloudEvents Kafka protocol binding, binary mode): key = stream id, value = the JSON
data, attributes as ``ce_*`` headers, plus the W3C ``traceparent`` header.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

# envelope field -> Kafka header name (binary mode). One table, used both ways.
_HEADER_OF: dict[str, str] = {
    "id": "ce_id",
    "source": "ce_source",
    "type": "ce_type",
    "subject": "ce_subject",
    "time": "ce_time",
    "specversion": "ce_specversion",
    "dataschema": "ce_dataschema",
    "tenant_id": "ce_tenantid",
    "correlation_id": "ce_correlationid",
    "causation_id": "ce_causationid",
    "sequence": "ce_sequence",
    "schema_version": "ce_schemaversion",
    "traceparent": "traceparent",
}
_FIELD_OF = {header: field for field, header in _HEADER_OF.items()}

Headers = list[tuple[str, bytes]]


class EventEnvelope(BaseModel):
    """One domain event as it travels between services."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str  # e.g. "/waybill/orders"
    type: str  # e.g. "order.placed"
    subject: str  # the stream id; also the Kafka key
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    specversion: Literal["1.0"] = "1.0"
    dataschema: str | None = None
    tenant_id: str
    correlation_id: str
    causation_id: str | None = None
    sequence: int  # the event's version within its stream
    schema_version: int = 1
    traceparent: str | None = None
    data: dict[str, Any]

    def to_kafka(self) -> tuple[bytes, bytes, Headers]:
        """(key, value, headers) for a Kafka record in CloudEvents binary mode."""
        headers: Headers = [("content-type", CONTENT_TYPE.encode())]
        for field, header in _HEADER_OF.items():
            value = getattr(self, field)
            if value is None:
                continue
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            headers.append((header, text.encode()))
        value_bytes = json.dumps(self.data, separators=(",", ":"), default=str).encode()
        return self.subject.encode(), value_bytes, headers

    @classmethod
    def from_kafka(cls, value: bytes, headers: Headers | dict[str, Any]) -> EventEnvelope:
        """Rebuild an envelope from a binary-mode record. Raises ``ValueError`` on bad input."""
        items = headers.items() if isinstance(headers, dict) else headers
        attrs: dict[str, Any] = {}
        for name, raw in items:
            field = _FIELD_OF.get(name)
            if field is not None:
                attrs[field] = raw.decode() if isinstance(raw, bytes | bytearray) else raw
        try:
            attrs["data"] = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"event value is not JSON: {exc}") from exc
        return cls.model_validate(attrs)
