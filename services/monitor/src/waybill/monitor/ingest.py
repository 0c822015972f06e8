"""What the monitor does with each record it consumes, in the record's transaction.

- an event (``waybill.<service>.events``): kept in ``consumed_events`` (its event id is the key,
  so a redelivery stops here), then projected into its read model; a webhook message's final
  outcome also settles the dead letter of that message being replayed;
- a dead letter (``waybill.dlq``): a new dead letter, or, when it is a failed retry
  (``dlq_retry_of``) or a webhook message that failed again, the earlier dead letter back
  to ``pending`` with its attempts + 1 and ``recurred``; either way each dlq record counts
  once (``dlq_records``: its own topic, partition and offset);
- a retry outcome (``waybill.retry.outcomes``): the retried dead letter ``resolved``;
- a record the monitor's own group failed and an operator retried (``waybill.retry.monitor``):
  an event like any other.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.metrics import inbox_check
from waybill.common.consumer.poison import raise_if_poisoned
from waybill.common.contracts import notifier
from waybill.common.db import driver
from waybill.common.envelope import EventEnvelope
from waybill.common.registry import EventRegistry
from waybill.common.topics import DEAD_LETTERS, RETRY_OUTCOMES
from waybill.monitor import repository
from waybill.monitor.letters import new_dead_letter_id, read_dead_letter
from waybill.monitor.projections import StreamEvent, project

log = structlog.get_logger(__name__)

SYSTEM_ACTOR = "monitor"  # the audit trail's "who" for what the consumer did
# The consumer's group, and its labels in the kit's consumer metrics (``waybill_consumer_*``).
SERVICE = "monitor"
CONSUMER_GROUP = "monitor"


class UnreadableRecord(ValueError):
    """A record on an events topic that is no CloudEvent (kept nowhere; logged and counted)."""


class Ingest:
    def __init__(
        self, registry: EventRegistry, *, operator_tenant: str, poison_group: str | None = None
    ) -> None:
        self._registry = registry
        self._operator_tenant = operator_tenant
        self._poison_group = poison_group  # the test poison switch: on for this group

    async def apply(self, conn: AsyncConnection, record: Any) -> str:
        """Apply one record; returns its outcome (``applied``, ``duplicate``, ...)."""
        if record.topic == DEAD_LETTERS:
            return await self.dead_letter(conn, record)
        if record.topic == RETRY_OUTCOMES:
            return await self.retry_outcome(conn, record)
        return await self.event(conn, record)

    async def event(self, conn: AsyncConnection, record: Any) -> str:
        try:
            envelope = EventEnvelope.from_kafka(record.value or b"", list(record.headers or ()))
        except ValueError as exc:
            raise UnreadableRecord(str(exc)) from exc
        if self._poison_group is not None:
            raise_if_poisoned(envelope, self._poison_group)
        # consumed_events is this group's inbox: its statement alone is timed, as the kit's
        # (the transaction begun first, so its BEGIN is not counted).
        await driver(conn)
        with inbox_check(SERVICE, CONSUMER_GROUP):
            fresh = await self._record(conn, record, envelope)
        if not fresh:
            return "duplicate"
        payload = self.parse(envelope.type, envelope.schema_version, envelope.data)
        if payload is None:
            return "kept"  # a type without a read model: in the feed only
        stream = StreamEvent(envelope.tenant_id, envelope.subject, envelope.sequence, envelope.time)
        await project(conn, stream, payload)
        await self._settle_delivery(conn, envelope.tenant_id, payload)
        return "applied"

    async def _record(self, conn: AsyncConnection, record: Any, envelope: EventEnvelope) -> bool:
        return await repository.record_event(
            conn,
            {
                "event_id": envelope.id,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "type": envelope.type,
                "schema_version": envelope.schema_version,
                "tenant_id": envelope.tenant_id,
                "subject": envelope.subject,
                "sequence": envelope.sequence,
                "data": envelope.data,
                "time": envelope.time,
            },
        )

    def parse(self, event_type: str, schema_version: int, data: dict[str, Any]) -> BaseModel | None:
        """The typed event (upcast to its latest version); None for a type nobody declared."""
        if not self._registry.knows(event_type):
            return None
        return self._registry.decode(event_type, schema_version, data)

    async def _settle_delivery(self, conn: AsyncConnection, tenant_id: str, event: Any) -> None:
        """A replayed webhook message's outcome settles its dead letter (CONTRACT.md § monitor)."""
        if not isinstance(
            event, notifier.WebhookDeliverySucceeded | notifier.WebhookDeliveryFailed
        ):
            return
        letter = await repository.open_delivery_letter(conn, tenant_id, event.message_id)
        if letter is None or letter.status != "retrying":
            return
        succeeded = isinstance(event, notifier.WebhookDeliverySucceeded)
        status = "resolved" if succeeded else "pending"
        changes: dict[str, Any] = {"status": status}
        if not succeeded:
            changes.update(recurred=True, attempts=letter.attempts + 1)
        await repository.update_dead_letter(conn, letter.id, **changes)
        await repository.add_audit(
            conn,
            letter.id,
            SYSTEM_ACTOR,
            "resolved" if succeeded else "recurred",
            {"event_type": event.event_type, "attempts": event.attempts},
        )

    async def dead_letter(self, conn: AsyncConnection, record: Any) -> str:
        letter = read_dead_letter(record, operator_tenant=self._operator_tenant)
        earlier = None
        if letter.retry_of is not None:
            earlier = await repository.find_dead_letter(conn, letter.retry_of, lock=True)
        elif letter.kind == "delivery" and letter.delivery_id is not None:
            earlier = await repository.open_delivery_letter(
                conn, letter.fields["tenant_id"], letter.delivery_id
            )
        dead_letter_id = earlier.id if earlier is not None else new_dead_letter_id()
        coordinates = (record.topic, record.partition, record.offset)
        if not await repository.claim_dlq_record(conn, *coordinates, dead_letter_id):
            return "duplicate"
        if earlier is not None:
            return await self._recurred(conn, earlier, letter.fields)
        await repository.insert_dead_letter(conn, {"id": dead_letter_id, **letter.fields})
        log.info(
            "monitor_dead_letter_recorded",
            dead_letter_id=dead_letter_id,
            tenant_id=letter.fields["tenant_id"],
            failure_type=letter.fields["failure_type"],
            consumer_group=letter.fields["consumer_group"],
        )
        return "applied"

    async def _recurred(self, conn: AsyncConnection, earlier: Any, fields: dict[str, Any]) -> str:
        """A dead letter that failed again while being retried: pending again, attempts + 1, and
        the new failure's description (the dlq record's coordinates are the newest too)."""
        kept = ("error", "exception_type", "stack", "failure_type", "confidence", "remediation")
        await repository.update_dead_letter(
            conn,
            earlier.id,
            status="pending",
            recurred=True,
            attempts=earlier.attempts + 1,
            last_failed_at=fields["last_failed_at"],
            **{name: fields[name] for name in kept},
        )
        await repository.add_audit(
            conn,
            earlier.id,
            SYSTEM_ACTOR,
            "recurred",
            {"error": fields["error"], "failure_type": fields["failure_type"]},
        )
        return "recurred"

    async def retry_outcome(self, conn: AsyncConnection, record: Any) -> str:
        retry_id = (record.key or b"").decode(errors="replace")
        try:
            outcome = json.loads(record.value or b"{}")
        except ValueError:
            outcome = {}
        letter = await repository.find_dead_letter(conn, retry_id, lock=True)
        if letter is None or letter.status not in ("retrying", "pending"):
            return "duplicate"
        await repository.update_dead_letter(conn, letter.id, status="resolved")
        await repository.add_audit(
            conn,
            letter.id,
            SYSTEM_ACTOR,
            "resolved",
            {k: outcome.get(k) for k in ("group", "service", "outcome", "at") if k in outcome},
        )
        return "applied"
