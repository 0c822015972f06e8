"""Application layer: lock the shipment -> load its stream -> decide -> append + project.

Every writer of a shipment's stream locks its ``shipments`` row first (one lock order:
shipment, then agent), inside a transaction whose lock waits are bounded
(``shipping_lock_timeout_ms``). Accepting an offer does not wait at all: ``FOR UPDATE NOWAIT``
on the shipment, so of N agents accepting at once exactly one gets the lock and the rest get
409 ``ASSIGNMENT_CONFLICT`` at once (SQLSTATE 55P03); whoever comes after the winner committed
finds the assignment taken (409 ``ASSIGNMENT_ALREADY_ACCEPTED``).

Streams are short (a dozen events), so a command folds the whole stream rather than reading a
snapshot; the projection row is written from that fold after every command, which is why the
row always equals a replay (tests/integration/test_projection_matches_stream.py).

The agent directory, tenant settings and the capacity view are in ``agents.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.orders import OrderPaid
from waybill.common.contracts.shipping import (
    ShipmentAssignmentAccepted,
    ShipmentAssignmentDeclined,
    ShipmentAssignmentExpired,
    ShipmentAssignmentOffered,
    ShipmentCancelled,
    ShippingEvent,
)
from waybill.common.eventstore import Caller, EventStore, RecordedEvent, append_decided
from waybill.common.keyset import Position
from waybill.shipping import repository as db
from waybill.shipping.codes import DeliveryCodes
from waybill.shipping.domain import shipment as s
from waybill.shipping.domain.agents import eligible, next_wave, waits_for_a_shift
from waybill.shipping.domain.errors import (
    AgentAtCapacity,
    AssignmentConflict,
    AssignmentNotFound,
    RecordedRefusal,
    ShipmentNotFound,
    ShippingError,
)
from waybill.shipping.views import AssignmentView, ShipmentView

log = structlog.get_logger(__name__)

STREAM_TYPE = "shipment"
_SHIPMENT_IDS = uuid.UUID("6f1d4c52-3a7e-4c1b-9b8e-5d2f0a9c7e31")


def shipment_id_for(tenant_id: str, order_id: str) -> str:
    """One shipment per order: its id follows from the order, so a redelivered ``order.paid``
    names the same stream (and the unique (tenant, order) constraint says it twice)."""
    return f"shp_{uuid.uuid5(_SHIPMENT_IDS, f'{tenant_id}:{order_id}').hex}"


class _Unread:
    """The tenant's settings have not been read in this transaction yet."""


UNREAD = _Unread()


class ShipmentBusy(ShippingError):
    """Another command holds the shipment longer than the lock timeout: ask again."""

    code = "SHIPMENT_BUSY"


@dataclass(frozen=True)
class Policy:
    sla: timedelta = timedelta(hours=48)
    offer_ttl: timedelta = timedelta(seconds=120)
    wave_size: int = 0
    max_attempts: int = 3
    waiting_recheck: timedelta = timedelta(seconds=30)
    lock_timeout_ms: int = 2000

    def of_tenant(self, settings: Any | None) -> tuple[int, timedelta]:
        """(wave size, offer TTL) for a tenant: its own settings where it has them."""
        wave_size = getattr(settings, "offer_wave_size", None)
        ttl_s = getattr(settings, "offer_ttl_s", None)
        return (
            self.wave_size if wave_size is None else wave_size,
            self.offer_ttl if ttl_s is None else timedelta(seconds=ttl_s),
        )

    def sla_of_tenant(self, settings: Any | None) -> timedelta:
        hours = getattr(settings, "sla_hours", None)
        return self.sla if hours is None else timedelta(hours=hours)


@dataclass
class ShippingHandlers:
    engine: AsyncEngine
    store: EventStore
    codes: DeliveryCodes
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Called when a shipment may be offered now (an agent became eligible): wakes this
    # process's dispatcher instead of waiting for its next turn.
    wake_dispatcher: Callable[[], None] = lambda: None

    # --- from orders' events ---------------------------------------------------------------

    async def open_shipment(
        self, conn: AsyncConnection, caller: Caller, event: OrderPaid
    ) -> s.Shipment | None:
        """``order.paid`` -> the order's one shipment (None: it had one already), offered to
        the first wave at once where an agent is eligible."""
        shipment_id = shipment_id_for(caller.tenant_id, event.order_id)
        address = event.shipping_address
        postal_code = s.normalise_postal_code(address.postal_code) if address else None
        if postal_code is None:
            # An order.paid of schema v1 (upcast) carries no address: the shipment exists but
            # waits; nobody can be offered a parcel without a postal code.
            log.warning("shipment_address_missing", order_id=event.order_id)
        now = self.clock()
        settings = await db.tenant_settings(conn, caller.tenant_id)
        sla = self.policy.sla_of_tenant(settings)
        command = s.CreateShipment(shipment_id, event.order_id, postal_code, now + sla)
        state = s.Shipment(shipment_id=shipment_id)
        events = s.decide(state, command)
        created = s.evolve_all(state, events)
        if not await db.insert_shipment(conn, caller.tenant_id, created, now):
            return None
        # The row is projected once, by dispatch_in, after the first wave (or the wait).
        after = await self._commit(conn, caller, state, events, project=False)
        log.info("shipment_create_succeeded", shipment_id=shipment_id, order_id=event.order_id)
        return await self.dispatch_in(conn, caller, after, settings=settings, unprojected=True)

    async def cancel_for_order(
        self, conn: AsyncConnection, caller: Caller, order_id: str, reason: str
    ) -> None:
        """The order was cancelled or refunded: a still-pending shipment is cancelled and its
        open offer withdrawn; one already on its way is left alone (logged)."""
        shipment_id = await db.shipment_for_order(conn, caller.tenant_id, order_id)
        if shipment_id is None:
            return  # cancelled before it was paid: there never was a shipment
        await self._lock(conn, caller.tenant_id, shipment_id)
        state, _ = await self._load(conn, shipment_id)
        events = s.decide(state, s.CancelShipment(reason=reason))
        if not events:
            log.info(
                "shipment_cancel_skipped",
                shipment_id=shipment_id,
                order_id=order_id,
                status=state.status.value,
            )
            return
        await self._commit(conn, caller, state, events)

    # --- agents' and admins' commands --------------------------------------------------------

    async def accept(self, caller: Caller, agent_id: str, assignment_id: str) -> ShipmentView:
        async with self.engine.begin() as conn:
            await db.set_lock_timeout(conn, self.policy.lock_timeout_ms)
            offer = await db.offer_row(conn, caller.tenant_id, assignment_id, agent_id)
            if offer is None:
                raise AssignmentNotFound(f"assignment {assignment_id} not found")
            try:
                await db.lock_shipment(conn, caller.tenant_id, offer.shipment_id, nowait=True)
                agent = await db.lock_agent(conn, caller.tenant_id, agent_id)
            except asyncpg.LockNotAvailableError as exc:
                raise AssignmentConflict(
                    "another request holds this assignment right now; ask again",
                    retry_after_s=1,
                ) from exc
            state, _ = await self._load(conn, offer.shipment_id)
            if agent is None or not agent["active"]:
                raise AgentAtCapacity(f"agent {agent_id} is not active")
            active = await db.active_shipments(conn, agent_id)
            command = s.AcceptOffer(
                assignment_id, agent_id, self.clock(), active, agent["capacity"]
            )
            after = await self._commit(conn, caller, state, s.decide(state, command))
            return await self._view(conn, caller.tenant_id, after.shipment_id)

    async def decline(
        self, caller: Caller, agent_id: str, assignment_id: str, reason: str | None
    ) -> None:
        async with self.engine.begin() as conn:
            await db.set_lock_timeout(conn, self.policy.lock_timeout_ms)
            offer = await db.offer_row(conn, caller.tenant_id, assignment_id, agent_id)
            if offer is None:
                raise AssignmentNotFound(f"assignment {assignment_id} not found")
            await self._lock(conn, caller.tenant_id, offer.shipment_id, busy=AssignmentConflict)
            state, _ = await self._load(conn, offer.shipment_id)
            events = s.decide(state, s.DeclineOffer(assignment_id, agent_id, reason))
            after = await self._commit(conn, caller, state, events)
            if after.awaiting_offer:
                await self.dispatch_in(conn, caller, after)  # the wave closed: the next one now

    async def act(
        self,
        caller: Caller,
        shipment_id: str,
        decide_with: Callable[[AsyncConnection, s.Shipment], Any],
    ) -> ShipmentView:
        """Run one command on the shipment; ``decide_with(conn, state)`` builds it (it may read
        the tenant's settings) and returns it. A recorded refusal (a wrong delivery code) is
        committed, then raised."""
        refusal: RecordedRefusal | None = None
        async with self.engine.begin() as conn:
            await db.set_lock_timeout(conn, self.policy.lock_timeout_ms)
            await self._lock(conn, caller.tenant_id, shipment_id)
            state, _ = await self._load(conn, shipment_id)
            command = await decide_with(conn, state)
            try:
                events = s.decide(state, command)
            except RecordedRefusal as refused:
                refusal, events = refused, cast(list[ShippingEvent], list(refused.events))
            await self._commit(conn, caller, state, events)
            view = await self._view(conn, caller.tenant_id, shipment_id)
        if refusal is not None:
            raise refusal
        return view

    # --- the dispatcher's and the SLA job's steps --------------------------------------------

    async def dispatch_due(self, *, limit: int = 100) -> int:
        """One turn of the dispatcher: expire what ran out, offer what waits. Returns how many
        shipments it looked at."""
        now = self.clock()
        async with self.engine.connect() as conn:
            due = await db.due_for_dispatch(conn, now, limit)
        for shipment_id in due:
            async with self.engine.begin() as conn:
                tenant_id = await db.lock_shipment_if_free(conn, shipment_id)
                if tenant_id is None:
                    continue  # a command holds it; it will be due again if still needed
                state, correlation_id = await self._load(conn, shipment_id)
                caller = Caller(tenant_id=tenant_id, correlation_id=correlation_id)
                await self.dispatch_in(conn, caller, state)
        return len(due)

    async def dispatch_in(
        self,
        conn: AsyncConnection,
        caller: Caller,
        state: s.Shipment,
        *,
        settings: db.TenantSettings | _Unread | None = UNREAD,
        unprojected: bool = False,
    ) -> s.Shipment:
        """Inside the shipment's lock: close an offer that ran out, then offer the next wave,
        or leave the shipment waiting. ``unprojected``: the row does not show ``state`` yet
        (it is written once here, whatever happens)."""
        now = self.clock()
        expired = s.decide(state, s.ExpireOffer(now))
        state = await self._commit(conn, caller, state, expired, project=False)
        unprojected = unprojected or bool(expired)
        if not state.awaiting_offer:
            if unprojected:
                await db.project_shipment(conn, state, now, dispatch_at=_dispatch_at(state, now))
            return state
        assert state.postal_code is not None
        if isinstance(settings, _Unread):
            settings = await db.tenant_settings(conn, caller.tenant_id)
        wave_size, offer_ttl = self.policy.of_tenant(settings)
        candidates = await db.candidates(conn, caller.tenant_id, state.postal_code)
        wave = next_wave(state, eligible(candidates, now), wave_size)
        if not wave:
            # Waiting costs nothing while nobody can take it: it is looked at again only when
            # a shift may start (the recheck), or when an agent event wakes it (wake_waiting).
            recheck = (
                now + self.policy.waiting_recheck
                if waits_for_a_shift(candidates, state, now)
                else None
            )
            await db.project_shipment(conn, state, now, dispatch_at=recheck)
            log.debug(
                "shipment_offer_waiting",
                shipment_id=state.shipment_id,
                postal_code=state.postal_code,
                recheck=recheck is not None,
            )
            return state
        offer = s.OfferWave(f"asg_{uuid.uuid4().hex}", wave, now + offer_ttl)
        return await self._commit(conn, caller, state, s.decide(state, offer))

    async def report_sla_breach(self, shipment_id: str, tenant_id: str) -> bool:
        async with self.engine.begin() as conn:
            await self._lock(conn, tenant_id, shipment_id)
            state, correlation_id = await self._load(conn, shipment_id)
            events = s.decide(state, s.BreachSla(self.clock()))
            caller = Caller(tenant_id=tenant_id, correlation_id=correlation_id)
            await self._commit(conn, caller, state, events)
        if events:
            log.warning("shipment_sla_breached", shipment_id=shipment_id, status=state.status.value)
        return bool(events)

    # --- reads ---------------------------------------------------------------------------------

    async def get_shipment(
        self, tenant_id: str, shipment_id: str, *, agent_id: str | None = None
    ) -> ShipmentView:
        async with self.engine.connect() as conn:
            view = await self._view(conn, tenant_id, shipment_id)
        if agent_id is not None and view.agent_id != agent_id:
            raise ShipmentNotFound(f"shipment {shipment_id} not found")
        return view

    async def list_shipments(
        self,
        tenant_id: str,
        *,
        order_id: str | None,
        status: str | None,
        agent_id: str | None,
        limit: int,
        after: Position | None,
    ) -> tuple[list[ShipmentView], Position | None]:
        rows, last = await db.shipments_page(
            self.engine,
            tenant_id,
            order_id=order_id,
            status=status,
            agent_id=agent_id,
            limit=limit,
            after=after,
        )
        return [self._row_view(r) for r in rows], last

    async def list_assignments(
        self,
        tenant_id: str,
        agent_id: str,
        *,
        status: str | None,
        limit: int,
        after: Position | None,
    ) -> tuple[list[AssignmentView], Position | None]:
        rows, last = await db.agent_offers(
            self.engine,
            tenant_id,
            agent_id,
            status=status,
            now=self.clock(),
            limit=limit,
            after=after,
        )
        return [AssignmentView.from_row(r) for r in rows], last

    async def shipment_events(
        self,
        tenant_id: str,
        shipment_id: str,
        *,
        agent_id: str | None,
        after_version: int,
        limit: int,
    ) -> tuple[list[RecordedEvent], int | None]:
        await self.get_shipment(tenant_id, shipment_id, agent_id=agent_id)  # 404 for others
        async with self.engine.connect() as conn:
            events = await self.store.load(
                conn, shipment_id, after_version=after_version, limit=limit + 1
            )
        if len(events) <= limit:
            return events, None
        return events[:limit], events[limit - 1].version

    # --- internals -----------------------------------------------------------------------------

    async def _lock(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        shipment_id: str,
        *,
        busy: type[ShippingError] = ShipmentBusy,
    ) -> None:
        try:
            found = await db.lock_shipment(conn, tenant_id, shipment_id)
        except asyncpg.LockNotAvailableError as exc:
            raise busy(f"shipment {shipment_id} is busy; ask again", retry_after_s=1) from exc
        if not found:
            raise ShipmentNotFound(f"shipment {shipment_id} not found")

    async def _load(self, conn: AsyncConnection, shipment_id: str) -> tuple[s.Shipment, str]:
        """The shipment folded from its stream, and the correlation id its saga carries."""
        recorded = await self.store.load(conn, shipment_id)
        events = [cast(ShippingEvent, r.typed()) for r in recorded]
        correlation_id = (
            recorded[0].metadata.get("correlation_id") if recorded else None
        ) or f"shipment-{shipment_id}"
        return s.fold(shipment_id, events), str(correlation_id)

    async def _commit(
        self,
        conn: AsyncConnection,
        caller: Caller,
        before: s.Shipment,
        events: Sequence[ShippingEvent],
        *,
        project: bool = True,
    ) -> s.Shipment:
        """Append ``events`` at ``before``'s version and move every projection along
        (``project=False``: not the shipment's row yet; the caller writes it)."""
        if not events:
            return before
        await append_decided(
            self.store,
            conn,
            caller,
            stream_id=before.shipment_id,
            stream_type=STREAM_TYPE,
            expected_version=before.version,
            events=events,
        )
        after = s.evolve_all(before, events)
        now = self.clock()
        if project:
            await db.project_shipment(conn, after, now, dispatch_at=_dispatch_at(after, now))
        for event in events:
            await self._project_offer(conn, caller.tenant_id, after, event, now)
        if (
            before.agent_id is not None
            and before.status in s.ACTIVE
            and after.status not in s.ACTIVE
        ):
            await self._capacity_freed(conn, caller.tenant_id, before.agent_id, now)
        return after

    async def _project_offer(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        state: s.Shipment,
        event: ShippingEvent,
        now: datetime,
    ) -> None:
        match event:
            case ShipmentAssignmentOffered():
                await db.insert_offers(
                    conn,
                    tenant_id,
                    state.shipment_id,
                    state.postal_code,
                    assignment_id=event.assignment_id,
                    wave=event.wave,
                    agent_ids=event.agent_ids,
                    expires_at=event.expires_at,
                    now=now,
                )
            case ShipmentAssignmentDeclined():
                await db.close_offers(
                    conn, event.assignment_id, "declined", now, agent_id=event.agent_id
                )
            case ShipmentAssignmentExpired():
                await db.close_offers(conn, event.assignment_id, "expired", now)
            case ShipmentAssignmentAccepted():
                await db.close_offers(
                    conn, event.assignment_id, "accepted", now, agent_id=event.agent_id
                )
                await db.close_offers(conn, event.assignment_id, "lost", now)
            case ShipmentCancelled():
                for assignment_id in event.withdrawn_assignment_ids:
                    await db.close_offers(conn, assignment_id, "withdrawn", now)

    async def _capacity_freed(
        self, conn: AsyncConnection, tenant_id: str, agent_id: str, now: datetime
    ) -> None:
        agent = await db.agent_row(conn, tenant_id, agent_id)
        if agent is not None and await db.wake_waiting(
            conn, tenant_id, agent.service_zip_codes, now
        ):
            self.wake_dispatcher()

    async def _view(self, conn: AsyncConnection, tenant_id: str, shipment_id: str) -> ShipmentView:
        row = await db.shipment_row(conn, tenant_id, shipment_id)
        if row is None:
            raise ShipmentNotFound(f"shipment {shipment_id} not found")
        return self._row_view(row)

    @staticmethod
    def _row_view(row: Any) -> ShipmentView:
        return ShipmentView.from_row(row, max_wrong_codes=s.MAX_WRONG_CODES)


def _dispatch_at(state: s.Shipment, now: datetime) -> datetime | None:
    """When the dispatcher should look at the shipment next (None: it has nothing to do)."""
    if state.status is not s.S.pending or state.agent_id is not None:
        return None
    if state.offer is not None:
        return state.offer.expires_at
    return now if state.postal_code is not None else None
