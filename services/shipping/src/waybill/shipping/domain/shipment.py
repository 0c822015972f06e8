"""The shipment aggregate as a decider: ``decide(state, command)``, ``evolve(state, event)``.

Status machine (``TRANSITIONS``; any other request is INVALID_TRANSITION naming the status):

    (new) --create--> pending --ship--> in_transit --deliver--> delivered
                      |                 |  --mark_failed--> failed --return_to_sender--> returned
                      |                 |  --return_to_sender--> returned
                      |  --mark_failed--> failed      failed|returned --retry_delivery--> in_transit
                      |  --cancel--> cancelled (the order was cancelled or refunded)

Offers live beside the status while the shipment is ``pending`` and unassigned: one open offer
(an assignment id per wave, seen by every agent of the wave) at a time; it closes by
acceptance, expiry, or when every agent of the wave declined. Who is in the next wave is
``waves.next_wave``'s choice; this module checks each step against the state.

The delivery code is opaque here: a command carries its keyed hash (and the sealed copy for
the notifier); ``deliver`` compares hashes. Crypto stays in ``waybill.shipping.codes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from waybill.common.contracts.shipping import (
    ACTIVE_SHIPMENT_STATUSES,
    FAILURE_REASONS,
    DeliveryCodeRejected,
    DeliveryCodeReset,
    ShipmentAssignmentAccepted,
    ShipmentAssignmentDeclined,
    ShipmentAssignmentExpired,
    ShipmentAssignmentOffered,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentInTransit,
    ShipmentReturned,
    ShipmentSlaBreached,
    ShippingEvent,
)
from waybill.shipping.domain.errors import (
    AgentAtCapacity,
    AssignmentAlreadyAccepted,
    AssignmentNotFound,
    DeliveryAttemptsExhausted,
    DeliveryCodeLocked,
    DeliveryCodeMismatch,
    InvalidAgent,
    InvalidTransition,
    OfferExpired,
    ShipmentNotFound,
)

# The fifth wrong code locks the check until an admin issues a new code (CONTRACT.md).
MAX_WRONG_CODES = 5


class ShipmentStatus(StrEnum):
    new = "new"  # no events yet; never visible through the API
    pending = "pending"
    in_transit = "in_transit"
    delivered = "delivered"
    failed = "failed"
    returned = "returned"
    cancelled = "cancelled"


class Action(StrEnum):
    ship = "ship"
    deliver = "deliver"
    mark_failed = "mark_failed"
    return_to_sender = "return_to_sender"
    retry_delivery = "retry_delivery"
    cancel = "cancel"


S = ShipmentStatus
# The one table of allowed moves: action -> (from, to). The decider and the property tests
# both read it.
TRANSITIONS: dict[Action, tuple[frozenset[ShipmentStatus], ShipmentStatus]] = {
    Action.ship: (frozenset({S.pending}), S.in_transit),
    Action.deliver: (frozenset({S.in_transit}), S.delivered),
    Action.mark_failed: (frozenset({S.pending, S.in_transit}), S.failed),
    Action.return_to_sender: (frozenset({S.failed, S.in_transit}), S.returned),
    Action.retry_delivery: (frozenset({S.failed, S.returned}), S.in_transit),
    Action.cancel: (frozenset({S.pending}), S.cancelled),
}
# An assigned shipment in these statuses counts against its agent's capacity (the contract says
# which, so the monitor's capacity view counts the same ones).
ACTIVE = frozenset(S(status) for status in ACTIVE_SHIPMENT_STATUSES)


@dataclass(frozen=True)
class Offer:
    """The open wave: its assignment id, agents, deadline and who of them declined."""

    assignment_id: str
    wave: int
    agent_ids: tuple[str, ...]
    expires_at: datetime
    declined: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Shipment:
    shipment_id: str
    order_id: str = ""
    status: ShipmentStatus = S.new
    version: int = 0
    postal_code: str | None = None
    sla_due_at: datetime | None = None
    agent_id: str | None = None
    assignment_id: str | None = None  # the accepted assignment
    attempts: int = 0
    delivered_at: datetime | None = None
    failure_reason: str | None = None
    offer: Offer | None = None
    waves: int = 0
    # Agents offered since the current round of waves began, and every agent who declined.
    offered_round: frozenset[str] = frozenset()
    declined: frozenset[str] = frozenset()
    code_hash: str | None = None
    wrong_codes: int = 0
    sla_breached: bool = False

    @property
    def code_locked(self) -> bool:
        return self.wrong_codes >= MAX_WRONG_CODES

    @property
    def awaiting_offer(self) -> bool:
        """Pending, unassigned, deliverable, and no wave open: the dispatcher's business."""
        return (
            self.status is S.pending
            and self.agent_id is None
            and self.offer is None
            and self.postal_code is not None
        )


# --- commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCode:
    """A delivery code as the decider sees it: its keyed hash and the notifier's sealed copy."""

    code_hash: str
    sealed: str


@dataclass(frozen=True)
class CreateShipment:
    shipment_id: str
    order_id: str
    postal_code: str | None
    sla_due_at: datetime


@dataclass(frozen=True)
class OfferWave:
    assignment_id: str
    agent_ids: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True)
class DeclineOffer:
    assignment_id: str
    agent_id: str
    reason: str | None = None


@dataclass(frozen=True)
class ExpireOffer:
    now: datetime


@dataclass(frozen=True)
class AcceptOffer:
    assignment_id: str
    agent_id: str
    now: datetime
    agent_active: int  # the agent's active shipments, counted under its lock
    agent_capacity: int


@dataclass(frozen=True)
class Ship:
    agent_id: str
    code: IssuedCode
    notes: str | None = None


@dataclass(frozen=True)
class Deliver:
    agent_id: str
    now: datetime
    require_code: bool
    code_hash: str | None = None  # the keyed hash of the code the agent typed
    notes: str | None = None


@dataclass(frozen=True)
class MarkFailed:
    agent_id: str
    reason: str
    notes: str | None = None


@dataclass(frozen=True)
class ReturnToSender:
    agent_id: str
    notes: str | None = None


@dataclass(frozen=True)
class RetryDelivery:
    agent_id: str
    code: IssuedCode
    max_attempts: int
    notes: str | None = None


@dataclass(frozen=True)
class CancelShipment:
    reason: str


@dataclass(frozen=True)
class BreachSla:
    now: datetime


@dataclass(frozen=True)
class ResetCode:
    code: IssuedCode


Command = (
    CreateShipment
    | OfferWave
    | DeclineOffer
    | ExpireOffer
    | AcceptOffer
    | Ship
    | Deliver
    | MarkFailed
    | ReturnToSender
    | RetryDelivery
    | CancelShipment
    | BreachSla
    | ResetCode
)
# The agent-facing commands and the action of the transitions table each one performs.
ACTION_OF: dict[type[Command], Action] = {
    Ship: Action.ship,
    Deliver: Action.deliver,
    MarkFailed: Action.mark_failed,
    ReturnToSender: Action.return_to_sender,
    RetryDelivery: Action.retry_delivery,
    CancelShipment: Action.cancel,
}


def decide(state: Shipment, command: Command) -> list[ShippingEvent]:
    """The events ``command`` produces on ``state``, or a domain error. Pure."""
    match command:
        case CreateShipment():
            if state.status is not S.new:
                return []  # order.paid again: one shipment per order
            return [
                ShipmentCreated(
                    shipment_id=command.shipment_id,
                    order_id=command.order_id,
                    postal_code=command.postal_code,
                    sla_due_at=command.sla_due_at,
                )
            ]
        case OfferWave():
            return _offer(state, command)
        case DeclineOffer():
            return _decline(state, command)
        case ExpireOffer():
            offer = state.offer
            if offer is None or command.now < offer.expires_at:
                return []
            return [_expired(state, offer)]
        case AcceptOffer():
            return _accept(state, command)
        case Ship():
            _require(state, Action.ship, command.agent_id)
            return [_in_transit(state, command.agent_id, 1, command.code, command.notes)]
        case Deliver():
            return _deliver(state, command)
        case MarkFailed():
            if command.reason not in FAILURE_REASONS:
                raise InvalidAgent(f"reason must be one of {', '.join(FAILURE_REASONS)}")
            _require(state, Action.mark_failed, command.agent_id)
            return [
                ShipmentFailed(
                    shipment_id=state.shipment_id,
                    order_id=state.order_id,
                    agent_id=state.agent_id,
                    reason=command.reason,
                    notes=command.notes,
                )
            ]
        case ReturnToSender():
            _require(state, Action.return_to_sender, command.agent_id)
            return [
                ShipmentReturned(
                    shipment_id=state.shipment_id,
                    order_id=state.order_id,
                    agent_id=state.agent_id,
                    notes=command.notes,
                )
            ]
        case RetryDelivery():
            _require(state, Action.retry_delivery, command.agent_id)
            if state.attempts >= command.max_attempts:
                raise DeliveryAttemptsExhausted(
                    f"{state.attempts} of {command.max_attempts} delivery attempts made; "
                    "only return_to_sender is left"
                )
            attempt = state.attempts + 1
            return [_in_transit(state, command.agent_id, attempt, command.code, command.notes)]
        case CancelShipment():
            if state.status is not S.pending:
                return []  # on its way or done: an order's cancellation no longer stops it
            withdrawn = (state.offer.assignment_id,) if state.offer is not None else ()
            return [
                ShipmentCancelled(
                    shipment_id=state.shipment_id,
                    order_id=state.order_id,
                    reason=command.reason,
                    withdrawn_assignment_ids=withdrawn,
                )
            ]
        case BreachSla():
            if not sla_breached_at(state, command.now):
                return []
            assert state.sla_due_at is not None
            return [
                ShipmentSlaBreached(
                    shipment_id=state.shipment_id,
                    order_id=state.order_id,
                    sla_due_at=state.sla_due_at,
                    status=state.status.value,
                )
            ]
        case ResetCode():
            if state.status is not S.in_transit:
                raise _invalid("reset the delivery code of", state)
            return [
                DeliveryCodeReset(
                    shipment_id=state.shipment_id,
                    order_id=state.order_id,
                    delivery_code_sealed=command.code.sealed,
                    delivery_code_hash=command.code.code_hash,
                )
            ]
    raise TypeError(f"unknown command {command!r}")  # pragma: no cover - exhaustive match


def sla_breached_at(state: Shipment, now: datetime) -> bool:
    """Not delivered by its due time (and not cancelled), and not reported yet."""
    if state.sla_breached or state.sla_due_at is None or state.status in (S.new, S.cancelled):
        return False
    if state.delivered_at is not None:
        return state.delivered_at > state.sla_due_at
    return now >= state.sla_due_at


def normalise_postal_code(code: str) -> str:
    """Postal codes compare without spaces and case (``sw1a 1aa`` serves ``SW1A1AA``)."""
    return "".join(code.split()).upper()


def _offer(state: Shipment, command: OfferWave) -> list[ShippingEvent]:
    if not state.awaiting_offer:
        raise _invalid("offer", state)
    agents = tuple(dict.fromkeys(command.agent_ids))
    if not agents:
        raise InvalidAgent("a wave needs at least one agent")
    if declined := set(agents) & state.declined:
        raise InvalidAgent(f"agents {sorted(declined)} declined this shipment")
    return [
        ShipmentAssignmentOffered(
            shipment_id=state.shipment_id,
            assignment_id=command.assignment_id,
            wave=state.waves + 1,
            agent_ids=agents,
            expires_at=command.expires_at,
        )
    ]


def _decline(state: Shipment, command: DeclineOffer) -> list[ShippingEvent]:
    offer = _open_offer_for(state, command.assignment_id, command.agent_id)
    if command.agent_id in offer.declined:
        return []
    declined = ShipmentAssignmentDeclined(
        shipment_id=state.shipment_id,
        assignment_id=offer.assignment_id,
        agent_id=command.agent_id,
        reason=command.reason,
    )
    if set(offer.agent_ids) <= offer.declined | {command.agent_id}:
        return [declined, _expired(state, offer)]  # nobody left in this wave
    return [declined]


def _accept(state: Shipment, command: AcceptOffer) -> list[ShippingEvent]:
    if state.assignment_id is not None:
        if state.agent_id == command.agent_id and state.assignment_id == command.assignment_id:
            return []  # the winner asking again
        raise AssignmentAlreadyAccepted(f"shipment {state.shipment_id} was accepted already")
    offer = _open_offer_for(state, command.assignment_id, command.agent_id)
    if command.agent_id in offer.declined:
        raise OfferExpired(f"agent {command.agent_id} declined this offer")
    if command.now >= offer.expires_at:
        raise OfferExpired(f"the offer expired at {offer.expires_at.isoformat()}")
    if command.agent_active >= command.agent_capacity:
        raise AgentAtCapacity(
            f"agent {command.agent_id} has {command.agent_active} active shipments "
            f"(capacity {command.agent_capacity})"
        )
    return [
        ShipmentAssignmentAccepted(
            shipment_id=state.shipment_id,
            order_id=state.order_id,
            assignment_id=offer.assignment_id,
            agent_id=command.agent_id,
        )
    ]


def _open_offer_for(state: Shipment, assignment_id: str, agent_id: str) -> Offer:
    """The open offer if it is ``assignment_id`` and includes ``agent_id``; else the error an
    agent gets for an offer that is gone (expired, superseded, withdrawn) or never was its."""
    offer = state.offer
    if offer is None or offer.assignment_id != assignment_id:
        if state.status is S.cancelled:
            raise OfferExpired(f"shipment {state.shipment_id} was cancelled; its offer withdrawn")
        raise OfferExpired(f"assignment {assignment_id} is no longer open")
    if agent_id not in offer.agent_ids:
        raise AssignmentNotFound(f"assignment {assignment_id} was not offered to this agent")
    return offer


def _expired(state: Shipment, offer: Offer) -> ShipmentAssignmentExpired:
    return ShipmentAssignmentExpired(
        shipment_id=state.shipment_id, assignment_id=offer.assignment_id, wave=offer.wave
    )


def _in_transit(
    state: Shipment, agent_id: str, attempt: int, code: IssuedCode, notes: str | None
) -> ShipmentInTransit:
    return ShipmentInTransit(
        shipment_id=state.shipment_id,
        order_id=state.order_id,
        agent_id=agent_id,
        attempt=attempt,
        delivery_code_sealed=code.sealed,
        delivery_code_hash=code.code_hash,
        notes=notes,
    )


def _deliver(state: Shipment, command: Deliver) -> list[ShippingEvent]:
    _require(state, Action.deliver, command.agent_id)
    if command.require_code:
        if state.code_locked:
            raise DeliveryCodeLocked(
                "too many wrong delivery codes; an admin must issue a new one (reset-code)"
            )
        if command.code_hash is None:
            raise DeliveryCodeMismatch("this tenant requires the customer's delivery code")
        if command.code_hash != state.code_hash:
            rejected = DeliveryCodeRejected(
                shipment_id=state.shipment_id, agent_id=command.agent_id
            )
            if state.wrong_codes + 1 >= MAX_WRONG_CODES:
                raise DeliveryCodeLocked(
                    "wrong delivery code; the check is now locked until an admin resets it",
                    events=(rejected,),
                )
            left = MAX_WRONG_CODES - state.wrong_codes - 1
            raise DeliveryCodeMismatch(
                f"wrong delivery code ({left} tries left)", events=(rejected,)
            )
    delivered = ShipmentDelivered(
        shipment_id=state.shipment_id,
        order_id=state.order_id,
        agent_id=command.agent_id,
        delivered_at=command.now,
        notes=command.notes,
    )
    # Delivered late before the SLA job saw it: the breach is reported with the delivery, so
    # the job only ever scans shipments that are not delivered.
    late = decide(evolve(state, delivered), BreachSla(now=command.now))
    return [delivered, *late]


def _require(state: Shipment, action: Action, agent_id: str) -> None:
    """Only the assigned agent acts on a shipment (others: not found), and only as the table
    allows."""
    if state.agent_id != agent_id:
        raise ShipmentNotFound(f"shipment {state.shipment_id} not found")
    sources, _ = TRANSITIONS[action]
    if state.status not in sources:
        raise _invalid(action.value.replace("_", " "), state)


def _invalid(verb: str, state: Shipment) -> InvalidTransition:
    return InvalidTransition(
        f"cannot {verb} a shipment that is {state.status.value}",
        extra={"current_status": state.status.value},
    )


# --- evolve -------------------------------------------------------------------------------


def evolve(state: Shipment, event: ShippingEvent) -> Shipment:
    """The state after ``event``. Pure; never raises for an event decide() produced."""
    state = replace(state, version=state.version + 1)
    match event:
        case ShipmentCreated():
            return replace(
                state,
                order_id=event.order_id,
                status=S.pending,
                postal_code=event.postal_code,
                sla_due_at=event.sla_due_at,
            )
        case ShipmentAssignmentOffered():
            wave = set(event.agent_ids)
            # A wave repeating agents of this round starts the next round (waves.next_wave).
            round_ = wave if wave & state.offered_round else state.offered_round | wave
            return replace(
                state,
                offer=Offer(event.assignment_id, event.wave, event.agent_ids, event.expires_at),
                waves=event.wave,
                offered_round=frozenset(round_),
            )
        case ShipmentAssignmentDeclined():
            assert state.offer is not None
            offer = replace(state.offer, declined=state.offer.declined | {event.agent_id})
            return replace(state, offer=offer, declined=state.declined | {event.agent_id})
        case ShipmentAssignmentExpired():
            return replace(state, offer=None)
        case ShipmentAssignmentAccepted():
            return replace(
                state, offer=None, agent_id=event.agent_id, assignment_id=event.assignment_id
            )
        case ShipmentInTransit():
            return replace(
                state,
                status=S.in_transit,
                attempts=event.attempt,
                code_hash=event.delivery_code_hash,
                wrong_codes=0,
                failure_reason=None,
            )
        case ShipmentDelivered():
            return replace(state, status=S.delivered, delivered_at=event.delivered_at)
        case ShipmentFailed():
            return replace(state, status=S.failed, failure_reason=event.reason)
        case ShipmentReturned():
            return replace(state, status=S.returned)
        case ShipmentCancelled():
            return replace(state, status=S.cancelled, offer=None)
        case ShipmentSlaBreached():
            return replace(state, sla_breached=True)
        case DeliveryCodeReset():
            return replace(state, code_hash=event.delivery_code_hash, wrong_codes=0)
        case DeliveryCodeRejected():
            return replace(state, wrong_codes=state.wrong_codes + 1)
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover - exhaustive match


def evolve_all(state: Shipment, events: Sequence[ShippingEvent]) -> Shipment:
    for event in events:
        state = evolve(state, event)
    return state


def fold(shipment_id: str, events: Sequence[ShippingEvent]) -> Shipment:
    return evolve_all(Shipment(shipment_id=shipment_id), events)
