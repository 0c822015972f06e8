"""Properties of the shipment decider over random action sequences (hypothesis).

A sequence is drawn from a small alphabet of steps (an action, which agent, a flag, a number and
how far the clock moves); each step becomes a command against the state reached so far, so that
assignment ids, codes and deadlines are the live ones often enough to get past the offers.
Domain errors are skipped, as the API would refuse them; a refusal that records events (a wrong
delivery code) has them applied, as the handler commits them. Every property reads the
transitions table or the stream, never a copy of a rule.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.shipping import (
    FAILURE_REASONS,
    SHIPPING_EVENTS,
    ShipmentAssignmentAccepted,
    ShipmentSlaBreached,
    ShippingEvent,
)
from waybill.common.registry import EventRegistry
from waybill.shipping.domain import shipment as s
from waybill.shipping.domain.errors import RecordedRefusal, ShippingError

S = s.ShipmentStatus
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=120)
SLA = timedelta(minutes=10)
MAX_ATTEMPTS = 3
AGENTS = ("a1", "a2", "a3")
# Each action with a weight. "onwards" is the command that moves the shipment on from where it
# is (offer, accept, ship, deliver, retry): without it, random sequences spend themselves on
# refusals in the pending phase and seldom reach delivery, the last attempt or the code lock
# (the reach tests below check that they do).
KINDS = {
    "onwards": 8,
    "create": 1,
    "offer": 2,
    "decline": 2,
    "expire": 2,
    "accept": 3,
    "ship": 2,
    "deliver": 4,
    "mark_failed": 3,
    "return_to_sender": 2,
    "retry_delivery": 2,
    "cancel": 1,
    "breach_sla": 1,
    "reset_code": 1,
}


@dataclass(frozen=True)
class Step:
    kind: str
    agent: int  # 0: the assigned agent (a1 while none is); else AGENTS[agent]
    flag: bool  # the live assignment id (else an earlier one) / a wave of several agents
    number: int  # capacity use, which code is typed, which failure reason
    advance_s: int  # how far the clock moves before the step


@dataclass(frozen=True)
class Scenario:
    """A tenant's setting (is the delivery code required?) and the steps taken."""

    require_code: bool
    steps: list[Step]


scenarios = st.builds(
    Scenario,
    require_code=st.booleans(),
    steps=st.lists(
        st.builds(
            Step,
            kind=st.sampled_from([kind for kind, weight in KINDS.items() for _ in range(weight)]),
            agent=st.sampled_from([0, 0, 0, 0, 1, 2]),
            flag=st.booleans(),
            number=st.integers(0, 11),
            advance_s=st.sampled_from([0, 0, 0, 0, 0, 30, 30, 130, 400]),
        ),
        min_size=10,
        max_size=60,
    ),
)


def command_for(
    step: Step, state: s.Shipment, now: datetime, i: int, ids: list[str], require_code: bool
) -> s.Command:
    """The command ``step`` stands for against ``state`` at ``now`` (the i-th step)."""
    agent = (state.agent_id or AGENTS[0]) if step.agent == 0 else AGENTS[step.agent]
    live = state.offer.assignment_id if state.offer is not None else "as_none"
    assignment = live if step.flag or not ids else ids[step.number % len(ids)]
    issued = s.IssuedCode(code_hash=f"hash-{i}", sealed=f"sealed-{i}")
    typed = "wrong" if step.number < 8 else None if step.number == 11 else state.code_hash
    match step.kind:
        case "onwards":
            return onwards(state, now, i, require_code, typed)
        case "create":
            return s.CreateShipment("shp_1", "ord_1", "10001", START + SLA)
        case "offer":
            wave = AGENTS[: step.agent + 1] if step.flag else (AGENTS[step.agent],)
            return s.OfferWave(f"as_{i}", wave, now + TTL)
        case "decline":
            return s.DeclineOffer(assignment, agent)
        case "expire":
            return s.ExpireOffer(now=now)
        case "accept":
            return s.AcceptOffer(
                assignment, agent, now, agent_active=step.number % 3, agent_capacity=2
            )
        case "ship":
            return s.Ship(agent, issued)
        case "deliver":
            return s.Deliver(agent, now, require_code=require_code, code_hash=typed)
        case "mark_failed":
            reasons = (*FAILURE_REASONS, "LOST")
            return s.MarkFailed(agent, reasons[step.number % len(reasons)])
        case "return_to_sender":
            return s.ReturnToSender(agent)
        case "retry_delivery":
            return s.RetryDelivery(agent, issued, max_attempts=MAX_ATTEMPTS)
        case "cancel":
            return s.CancelShipment(reason="order cancelled")
        case "breach_sla":
            return s.BreachSla(now=now)
        case "reset_code":
            return s.ResetCode(issued)
    raise AssertionError(step.kind)


def onwards(
    state: s.Shipment, now: datetime, i: int, require_code: bool, typed: str | None
) -> s.Command:
    """The command that takes ``state`` a step towards delivery (the code typed may be wrong,
    a retry may be one too many)."""
    offer, agent = state.offer, state.agent_id or AGENTS[0]
    issued = s.IssuedCode(code_hash=f"hash-{i}", sealed=f"sealed-{i}")
    match state.status:
        case S.pending if offer is not None and now >= offer.expires_at:
            return s.ExpireOffer(now=now)
        case S.pending if offer is not None:
            return s.AcceptOffer(offer.assignment_id, offer.agent_ids[0], now, 0, 2)
        case S.pending if state.agent_id is None:
            return s.OfferWave(f"as_{i}", AGENTS, now + TTL)
        case S.pending:
            return s.Ship(agent, issued)
        case S.in_transit:
            return s.Deliver(agent, now, require_code=require_code, code_hash=typed)
        case S.failed | S.returned:  # refused once the attempts are used up: that is the point
            return s.RetryDelivery(agent, issued, max_attempts=MAX_ATTEMPTS)
    return s.BreachSla(now=now)


@dataclass(frozen=True)
class Move:
    """One applied event: the command it came from and the state before and after it."""

    command: s.Command
    event: ShippingEvent
    before: s.Shipment
    after: s.Shipment


def run(scenario: Scenario) -> list[Move]:
    """Create the shipment, then apply every step that the decider does not refuse."""
    state = s.Shipment("shp_1")
    now = START
    ids: list[str] = []
    moves: list[Move] = []
    first = Step("create", 0, False, 0, 0)
    for i, step in enumerate([first, *scenario.steps]):
        now += timedelta(seconds=step.advance_s)
        command = command_for(step, state, now, i, ids, scenario.require_code)
        try:
            events = s.decide(state, command)
        except RecordedRefusal as refusal:
            events = list(refusal.events)  # type: ignore[arg-type]
        except ShippingError:
            continue
        for event in events:
            after = s.evolve(state, event)
            moves.append(Move(command, event, state, after))
            state = after
        if isinstance(command, s.OfferWave) and events:
            ids.append(command.assignment_id)
    return moves


def final(moves: list[Move]) -> s.Shipment:
    return moves[-1].after


# No deadline: the machine is shared with other test sessions, and a slow example is no bug.
PROPERTY = settings(max_examples=400, deadline=None)


# --- (a) only table transitions happen ----------------------------------------------------


@PROPERTY
@given(scenarios)
def test_every_status_change_is_a_move_of_the_transitions_table(scenario):
    for move in run(scenario):
        before, after = move.before.status, move.after.status
        if before is after:
            continue
        if isinstance(move.command, s.CreateShipment):
            assert (before, after) == (S.new, S.pending)
            continue
        action = s.ACTION_OF.get(type(move.command))
        assert action is not None, f"{type(move.command).__name__} moved {before} -> {after}"
        sources, target = s.TRANSITIONS[action]
        assert before in sources and after is target, (action, before, after)


# --- (b) the stream folds back to the state ------------------------------------------------

REGISTRY = EventRegistry().add(*SHIPPING_EVENTS)


def as_stored(event: DomainEvent) -> DomainEvent:
    """The event as the event store reads it back: JSON data decoded through the registry."""
    decoded = REGISTRY.decode(event.event_type, event.schema_version, event.model_dump(mode="json"))
    assert isinstance(decoded, DomainEvent)
    return decoded


@PROPERTY
@given(scenarios)
def test_the_stream_read_back_from_storage_folds_to_the_state_reached_step_by_step(scenario):
    moves = run(scenario)
    stream = [as_stored(move.event) for move in moves]
    assert stream == [move.event for move in moves]
    assert s.fold("shp_1", stream) == final(moves)  # type: ignore[arg-type]
    assert final(moves).version == len(stream)


# --- (c) attempts stay within the maximum ---------------------------------------------------


@PROPERTY
@given(scenarios)
def test_delivery_attempts_never_exceed_the_maximum(scenario):
    for move in run(scenario):
        assert 0 <= move.after.attempts <= MAX_ATTEMPTS


# --- (d) one winner, one assignee ----------------------------------------------------------


@PROPERTY
@given(scenarios)
def test_a_shipment_has_at_most_one_accepted_assignment_and_never_changes_its_agent(scenario):
    moves = run(scenario)
    accepted = [m.event for m in moves if isinstance(m.event, ShipmentAssignmentAccepted)]
    assert len(accepted) <= 1
    for move in moves:
        if move.before.agent_id is not None:
            assert move.after.agent_id == move.before.agent_id
            assert move.after.assignment_id == move.before.assignment_id


# --- (e) one SLA breach --------------------------------------------------------------------


@PROPERTY
@given(scenarios)
def test_a_stream_reports_its_sla_breach_at_most_once(scenario):
    moves = run(scenario)
    assert sum(isinstance(m.event, ShipmentSlaBreached) for m in moves) <= 1


# --- the alphabet reaches far enough for the properties to mean something -------------------


def ever(reached: Callable[[s.Shipment], bool]) -> Callable[[list[Move]], bool]:
    return lambda moves: any(reached(move.after) for move in moves)


# What random sequences must reach for the properties above to mean something.
REACHABLE: dict[str, Callable[[list[Move]], bool]] = {
    **{
        f"status {status.value}": ever(lambda state, status=status: state.status is status)
        for status in S
        if status is not S.new
    },
    "a second wave": ever(lambda state: state.waves >= 2),
    "the last delivery attempt": ever(lambda state: state.attempts == MAX_ATTEMPTS),
    "a locked delivery code": ever(lambda state: state.code_locked),
    "a late delivery": ever(lambda state: state.status is S.delivered and state.sla_breached),
    "a wave closed by declines": lambda moves: any(
        isinstance(m.command, s.DeclineOffer) and m.after.offer is None for m in moves
    ),
}


@pytest.mark.parametrize("what", REACHABLE)
def test_random_sequences_reach(what):
    """Without shrinking: the first example that gets there is proof enough."""
    found = find(
        scenarios,
        lambda scenario: REACHABLE[what](run(scenario)),
        settings=settings(max_examples=3000, phases=[Phase.generate], database=None),
    )
    assert REACHABLE[what](run(found))
