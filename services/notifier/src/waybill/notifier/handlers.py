"""Application layer of the notifier: webhook endpoints, and the fan-out of every consumed
event to the endpoints that want it (one message per endpoint and event).

A message's body is the Standard Webhooks payload ``{"type","timestamp","data"}`` with the
event class's redacted fields left out (``DomainEvent.redacted``: the sealed delivery code and
its hash never reach a receiver). Its id (``msg_...``) is the ``webhook-id`` of every attempt
and replay. Sending is the deliveries worker's job; this module only records what is owed.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.event import DomainEvent, redact
from waybill.common.eventstore import Caller
from waybill.common.http.outbound import (
    AllowList,
    Resolver,
    UnresolvableTarget,
    resolve_checked,
    system_resolver,
)
from waybill.common.keyset import Position
from waybill.common.queue import JobQueue, NewJob
from waybill.notifier import repository as db
from waybill.notifier.domain.endpoints import new_secret
from waybill.notifier.domain.errors import DeliveryNotFound, DeliveryPending, EndpointNotFound
from waybill.notifier.views import DeliveryView, EndpointView, EndpointWithSecretView

log = structlog.get_logger(__name__)


@dataclass
class NotifierHandlers:
    engine: AsyncEngine
    secret_grace: timedelta = timedelta(days=1)
    # Targets exempt from the SSRF check (WAYBILL_NOTIFIER_ALLOWED_TARGETS).
    allow: AllowList = field(default_factory=lambda: AllowList.parse(""))
    resolver: Resolver = system_resolver
    # The deliveries queue the fan-out enqueues into (None: record messages only).
    delivery_queue: JobQueue | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def check_url(self, url: str) -> None:
        """422 UNSAFE_WEBHOOK_URL if the URL's host resolves to an address we must not call
        (``waybill.common.http.outbound``). A host that does not resolve yet is accepted: every
        attempt checks again, and a receiver's DNS may come after its endpoint."""
        with contextlib.suppress(UnresolvableTarget):
            await resolve_checked(url, self.allow, resolver=self.resolver)

    # --- fan-out ---------------------------------------------------------------------------

    async def fan_out(
        self, conn: AsyncConnection, caller: Caller, event: DomainEvent, subject: str
    ) -> int:
        """Record one message per endpoint of the tenant that wants ``event``; returns how many
        are new (a redelivered event: none)."""
        endpoints = await db.endpoints_for(conn, caller.tenant_id, event.event_type)
        if not endpoints:
            return 0
        now = self.clock()
        body = {
            "type": event.event_type,
            "timestamp": now.isoformat(),
            "data": redact(type(event), event.model_dump(mode="json")),
        }
        event_id = uuid.UUID(caller.causation_id) if caller.causation_id else uuid.uuid4()
        inserted = await db.insert_messages(
            conn,
            caller.tenant_id,
            event_id=event_id,
            event_type=event.event_type,
            subject=subject,
            body=body,
            now=now,
            messages=[(f"msg_{uuid.uuid4().hex}", e) for e in endpoints],
        )
        if self.delivery_queue is not None:
            # Keyed by endpoint and order, serial per key: an order's later event does not
            # overtake an earlier one still being retried to the same endpoint.
            await self.delivery_queue.enqueue_many(
                conn,
                [
                    NewJob(
                        key=f"{endpoint_id}:{subject}",
                        payload={"message_id": message_id},
                        tenant_id=caller.tenant_id,
                    )
                    for message_id, endpoint_id in inserted
                ],
            )
        return len(inserted)

    # --- replay and recovery ---------------------------------------------------------------

    async def replay(self, caller: Caller, message_id: str) -> DeliveryView:
        """Send a message again (the same ``webhook-id``): a new schedule of attempts."""
        async with self.engine.begin() as conn:
            message = await db.message_row(conn, caller.tenant_id, message_id, lock=True)
            if message is None:
                raise DeliveryNotFound(f"delivery {message_id} not found")
            if message.status == "pending":
                raise DeliveryPending(f"delivery {message_id} is still being attempted")
            await self._reopen(
                conn, caller.tenant_id, [(message_id, message.endpoint_id, message.subject)]
            )
        return await self._delivery_view(caller.tenant_id, message_id)

    async def recover(
        self,
        caller: Caller,
        endpoint_id: str,
        *,
        since: datetime,
        until: datetime | None,
        dry_run: bool,
    ) -> int:
        """Send again every failed message of the endpoint created in [since, until)."""
        async with self.engine.begin() as conn:
            if await db.endpoint_row(conn, caller.tenant_id, endpoint_id) is None:
                raise EndpointNotFound(f"webhook endpoint {endpoint_id} not found")
            failed = await db.failed_messages(conn, endpoint_id, since, until)
            if not dry_run and failed:
                await self._reopen(
                    conn, caller.tenant_id, [(m.message_id, endpoint_id, m.subject) for m in failed]
                )
        if not dry_run:
            log.info("webhook_endpoint_recover_started", endpoint_id=endpoint_id, count=len(failed))
        return len(failed)

    async def _reopen(
        self, conn: AsyncConnection, tenant_id: str, messages: list[tuple[str, str, str]]
    ) -> None:
        await db.reopen_messages(conn, [m for m, _, _ in messages], self.clock())
        if self.delivery_queue is not None:
            await self.delivery_queue.enqueue_many(
                conn,
                [
                    NewJob(key=f"{e}:{subject}", payload={"message_id": m}, tenant_id=tenant_id)
                    for m, e, subject in messages
                ],
            )

    async def _delivery_view(self, tenant_id: str, message_id: str) -> DeliveryView:
        async with self.engine.connect() as conn:
            row = await db.message_row(conn, tenant_id, message_id)
            attempts = await db.attempts_of(conn, [message_id])
        assert row is not None
        return DeliveryView.from_row(row, attempts[message_id])

    # --- endpoints -------------------------------------------------------------------------

    async def create_endpoint(self, caller: Caller, body: dict[str, Any]) -> EndpointWithSecretView:
        await self.check_url(body["url"])
        now = self.clock()
        secret = new_secret()
        async with self.engine.begin() as conn:
            row = await db.insert_endpoint(
                conn,
                {
                    **body,
                    "endpoint_id": f"ep_{uuid.uuid4().hex}",
                    "tenant_id": caller.tenant_id,
                    "secret": secret,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                },
            )
        log.info("webhook_endpoint_create_succeeded", endpoint_id=row.endpoint_id)
        return EndpointWithSecretView(**EndpointView.from_row(row).model_dump(), secret=secret)

    async def update_endpoint(
        self, caller: Caller, endpoint_id: str, changes: dict[str, Any]
    ) -> EndpointView:
        if "url" in changes:
            await self.check_url(changes["url"])
        if changes.get("status") == "active":
            changes = {**changes, "disabled_reason": None}
        elif changes.get("status") == "disabled":
            changes = {**changes, "disabled_reason": "disabled by an admin"}
        async with self.engine.begin() as conn:
            row = await db.update_endpoint(
                conn, caller.tenant_id, endpoint_id, {**changes, "updated_at": self.clock()}
            )
        if row is None:
            raise EndpointNotFound(f"webhook endpoint {endpoint_id} not found")
        return EndpointView.from_row(row)

    async def rotate_secret(self, caller: Caller, endpoint_id: str) -> EndpointWithSecretView:
        """A new secret signs from now; the previous one still does for the grace period (every
        delivery in it carries both signatures)."""
        now = self.clock()
        async with self.engine.begin() as conn:
            current = await db.endpoint_row(conn, caller.tenant_id, endpoint_id)
            if current is None:
                raise EndpointNotFound(f"webhook endpoint {endpoint_id} not found")
            secret = new_secret()
            row = await db.update_endpoint(
                conn,
                caller.tenant_id,
                endpoint_id,
                {
                    "secret": secret,
                    "previous_secret": current.secret,
                    "previous_secret_expires_at": now + self.secret_grace,
                    "updated_at": now,
                },
            )
        return EndpointWithSecretView(**EndpointView.from_row(row).model_dump(), secret=secret)

    async def delete_endpoint(self, caller: Caller, endpoint_id: str) -> None:
        async with self.engine.begin() as conn:
            if not await db.delete_endpoint(conn, caller.tenant_id, endpoint_id):
                raise EndpointNotFound(f"webhook endpoint {endpoint_id} not found")

    async def get_endpoint(self, tenant_id: str, endpoint_id: str) -> EndpointView:
        async with self.engine.connect() as conn:
            row = await db.endpoint_row(conn, tenant_id, endpoint_id)
        if row is None:
            raise EndpointNotFound(f"webhook endpoint {endpoint_id} not found")
        return EndpointView.from_row(row)

    async def list_endpoints(
        self, tenant_id: str, *, limit: int, after: Position | None
    ) -> tuple[list[EndpointView], Position | None]:
        rows, last = await db.endpoints_page(self.engine, tenant_id, limit=limit, after=after)
        return [EndpointView.from_row(r) for r in rows], last

    async def deliveries(
        self, tenant_id: str, endpoint_id: str, *, limit: int, after: Position | None
    ) -> tuple[list[DeliveryView], Position | None]:
        await self.get_endpoint(tenant_id, endpoint_id)  # 404 across tenants
        rows, last = await db.messages_page(self.engine, endpoint_id, limit=limit, after=after)
        async with self.engine.connect() as conn:
            attempts = await db.attempts_of(conn, [r.message_id for r in rows])
        return [DeliveryView.from_row(r, attempts[r.message_id]) for r in rows], last
