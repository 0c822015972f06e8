"""Given events, when a command, then events: the shipment decider's rules, one rule a test."""

from datetime import UTC, datetime, timedelta

import pytest

from waybill.common.contracts.shipping import (
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
)
from waybill.shipping.domain import shipment as s
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

S = s.ShipmentStatus
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=120)
SLA_DUE = NOW + timedelta(hours=48)
MAX_ATTEMPTS = 3


def code(n: int) -> s.IssuedCode:
    return s.IssuedCode(code_hash=f"hash-{n}", sealed=f"sealed-{n}")


def create(postal_code: str | None = "10001") -> s.CreateShipment:
    return s.CreateShipment(
        shipment_id="shp_1", order_id="ord_1", postal_code=postal_code, sla_due_at=SLA_DUE
    )


def offer(assignment_id="as_1", agents=("a1", "a2"), expires_at=NOW + TTL) -> s.OfferWave:
    return s.OfferWave(assignment_id=assignment_id, agent_ids=tuple(agents), expires_at=expires_at)


def accept(agent="a1", assignment_id="as_1", now=NOW, active=0, capacity=3) -> s.AcceptOffer:
    return s.AcceptOffer(
        assignment_id=assignment_id,
        agent_id=agent,
        now=now,
        agent_active=active,
        agent_capacity=capacity,
    )


def ship(agent="a1", code_no=1) -> s.Ship:
    return s.Ship(agent_id=agent, code=code(code_no))


def deliver(agent="a1", now=NOW, require_code=False, code_hash=None) -> s.Deliver:
    return s.Deliver(agent_id=agent, now=now, require_code=require_code, code_hash=code_hash)


def fail(agent="a1", reason="RECIPIENT_ABSENT") -> s.MarkFailed:
    return s.MarkFailed(agent_id=agent, reason=reason)


def retry(agent="a1", code_no=2, max_attempts=MAX_ATTEMPTS) -> s.RetryDelivery:
    return s.RetryDelivery(agent_id=agent, code=code(code_no), max_attempts=max_attempts)


def given(*commands: s.Command) -> s.Shipment:
    """The state after each command's events, applied in turn (a refusal fails the setup)."""
    state = s.Shipment(shipment_id="shp_1")
    for command in commands:
        state = s.evolve_all(state, s.decide(state, command))
    return state


def given_recorded(state: s.Shipment, command: s.Command) -> s.Shipment:
    """Apply a refusal's recorded events, as the handler commits them before refusing."""
    with pytest.raises((DeliveryCodeMismatch, DeliveryCodeLocked)) as err:
        s.decide(state, command)
    return s.evolve_all(state, err.value.events)  # type: ignore[arg-type]


ASSIGNED = (create(), offer(), accept())
IN_TRANSIT = (*ASSIGNED, ship())
# One command path to every status, each shipment assigned to a1.
REACHING = {
    S.new: (),
    S.pending: ASSIGNED,
    S.in_transit: IN_TRANSIT,
    S.delivered: (*IN_TRANSIT, deliver()),
    S.failed: (*IN_TRANSIT, fail()),
    S.returned: (*IN_TRANSIT, s.ReturnToSender(agent_id="a1")),
    S.cancelled: (*ASSIGNED, s.CancelShipment(reason="order cancelled")),
}
# The agent-facing command for each action of the table, all by the assigned agent.
COMMAND_FOR = {
    s.Action.ship: ship(),
    s.Action.deliver: deliver(),
    s.Action.mark_failed: fail(),
    s.Action.return_to_sender: s.ReturnToSender(agent_id="a1"),
    s.Action.retry_delivery: retry(),
}


# --- creation ----------------------------------------------------------------------------


def test_a_new_shipment_is_pending_with_its_sla_due_time_and_awaits_an_offer():
    [event] = s.decide(s.Shipment("shp_1"), create())
    assert isinstance(event, ShipmentCreated)
    state = s.evolve(s.Shipment("shp_1"), event)
    assert (state.status, state.sla_due_at, state.version) == (S.pending, SLA_DUE, 1)
    assert state.awaiting_offer


def test_a_shipment_is_created_once_however_often_order_paid_arrives():
    assert s.decide(given(create()), create()) == []
    assert s.decide(given(*IN_TRANSIT), create()) == []


def test_a_shipment_without_a_postal_code_is_never_offered():
    state = given(create(postal_code=None))
    assert not state.awaiting_offer
    with pytest.raises(InvalidTransition):
        s.decide(state, offer())


# --- offers ------------------------------------------------------------------------------


def test_waves_are_numbered_in_turn_with_one_assignment_id_for_all_agents_of_a_wave():
    state = given(create())
    [first] = s.decide(state, offer("as_1", ("a1", "a2")))
    assert isinstance(first, ShipmentAssignmentOffered)
    assert (first.assignment_id, first.wave, first.agent_ids) == ("as_1", 1, ("a1", "a2"))
    state = given(create(), offer("as_1"), s.ExpireOffer(now=NOW + TTL))
    [second] = s.decide(state, offer("as_2", ("a3",), NOW + 2 * TTL))
    assert (second.assignment_id, second.wave, second.agent_ids) == ("as_2", 2, ("a3",))
    assert s.evolve(state, second).offer == s.Offer("as_2", 2, ("a3",), NOW + 2 * TTL)


def test_a_wave_names_each_agent_once():
    [event] = s.decide(given(create()), offer(agents=("a1", "a2", "a1")))
    assert event.agent_ids == ("a1", "a2")


def test_an_empty_wave_is_refused():
    with pytest.raises(InvalidAgent) as err:
        s.decide(given(create()), offer(agents=()))
    assert err.value.code == "VALIDATION_ERROR"


def test_a_second_wave_while_one_is_open_is_an_invalid_transition():
    with pytest.raises(InvalidTransition):
        s.decide(given(create(), offer("as_1")), offer("as_2"))


def test_an_assigned_shipment_is_not_offered_again():
    with pytest.raises(InvalidTransition):
        s.decide(given(*ASSIGNED), offer("as_2"))


def test_an_offer_to_an_agent_who_declined_is_refused():
    state = given(
        create(),
        offer("as_1", ("a1", "a2")),
        s.DeclineOffer("as_1", "a1"),
        s.ExpireOffer(now=NOW + TTL),
    )
    with pytest.raises(InvalidAgent) as err:
        s.decide(state, offer("as_2", ("a2", "a1")))
    assert err.value.code == "VALIDATION_ERROR"
    [event] = s.decide(state, offer("as_2", ("a2",)))
    assert event.wave == 2


# --- decline -----------------------------------------------------------------------------


def test_a_decline_is_recorded_and_the_wave_stays_open_for_the_others():
    state = given(create(), offer())
    [event] = s.decide(state, s.DeclineOffer("as_1", "a1", reason="too far"))
    assert event == ShipmentAssignmentDeclined(
        shipment_id="shp_1", assignment_id="as_1", agent_id="a1", reason="too far"
    )
    state = s.evolve(state, event)
    assert state.offer is not None and state.offer.declined == {"a1"}
    assert state.declined == {"a1"}
    assert s.decide(state, accept("a2"))  # the other agent of the wave can still accept


def test_the_last_decliner_of_a_wave_closes_it():
    state = given(create(), offer(), s.DeclineOffer("as_1", "a1"))
    declined, expired = s.decide(state, s.DeclineOffer("as_1", "a2"))
    assert isinstance(declined, ShipmentAssignmentDeclined) and declined.agent_id == "a2"
    assert expired == ShipmentAssignmentExpired(shipment_id="shp_1", assignment_id="as_1", wave=1)
    state = s.evolve_all(state, [declined, expired])
    assert state.offer is None and state.awaiting_offer
    assert state.declined == {"a1", "a2"}


def test_declining_twice_records_nothing_new():
    state = given(create(), offer(), s.DeclineOffer("as_1", "a1"))
    assert s.decide(state, s.DeclineOffer("as_1", "a1")) == []


def test_declining_an_offer_not_made_to_the_agent_is_not_found():
    with pytest.raises(AssignmentNotFound):
        s.decide(given(create(), offer()), s.DeclineOffer("as_1", "a9"))


# --- expiry ------------------------------------------------------------------------------


def test_an_offer_expires_only_once_its_deadline_has_come():
    state = given(create(), offer())
    assert s.decide(state, s.ExpireOffer(now=NOW + TTL - timedelta(microseconds=1))) == []
    [event] = s.decide(state, s.ExpireOffer(now=NOW + TTL))
    assert event == ShipmentAssignmentExpired(shipment_id="shp_1", assignment_id="as_1", wave=1)
    state = s.evolve(state, event)
    assert state.offer is None and state.awaiting_offer
    assert s.decide(state, s.ExpireOffer(now=NOW + 10 * TTL)) == []


# --- accept ------------------------------------------------------------------------------


def test_an_agent_of_the_wave_accepting_becomes_the_assignee():
    state = given(create(), offer())
    [event] = s.decide(state, accept("a2"))
    assert event == ShipmentAssignmentAccepted(
        shipment_id="shp_1", order_id="ord_1", assignment_id="as_1", agent_id="a2"
    )
    state = s.evolve(state, event)
    assert (state.agent_id, state.assignment_id, state.offer) == ("a2", "as_1", None)
    assert state.status is S.pending and not state.awaiting_offer


def test_the_winner_accepting_again_gets_no_new_event():
    assert s.decide(given(*ASSIGNED), accept("a1")) == []


def test_another_agent_accepting_after_the_winner_is_told_it_was_accepted_already():
    with pytest.raises(AssignmentAlreadyAccepted) as err:
        s.decide(given(*ASSIGNED), accept("a2"))
    assert err.value.code == "ASSIGNMENT_ALREADY_ACCEPTED"


def test_accepting_after_the_deadline_is_refused_even_before_the_expiry_is_recorded():
    state = given(create(), offer())
    with pytest.raises(OfferExpired) as err:
        s.decide(state, accept(now=NOW + TTL))
    assert err.value.code == "OFFER_EXPIRED"
    assert s.decide(state, accept(now=NOW + TTL - timedelta(microseconds=1)))


def test_accepting_an_offer_superseded_by_a_later_wave_is_refused_as_expired():
    state = given(
        create(), offer("as_1", ("a1", "a2")), s.ExpireOffer(now=NOW + TTL), offer("as_2", ("a2",))
    )
    for agent in ("a1", "a2"):
        with pytest.raises(OfferExpired):
            s.decide(state, accept(agent, "as_1"))


def test_an_agent_not_in_the_wave_gets_assignment_not_found():
    with pytest.raises(AssignmentNotFound) as err:
        s.decide(given(create(), offer()), accept("a9"))
    assert err.value.code == "ASSIGNMENT_NOT_FOUND"


def test_an_agent_at_capacity_cannot_accept():
    state = given(create(), offer())
    with pytest.raises(AgentAtCapacity) as err:
        s.decide(state, accept(active=3, capacity=3))
    assert err.value.code == "AGENT_AT_CAPACITY"
    assert s.decide(state, accept(active=2, capacity=3))


def test_an_agent_who_declined_cannot_accept_the_same_wave():
    state = given(create(), offer(), s.DeclineOffer("as_1", "a1"))
    with pytest.raises(OfferExpired):
        s.decide(state, accept("a1"))


def test_accepting_the_withdrawn_offer_of_a_cancelled_shipment_is_refused_as_expired():
    state = given(create(), offer(), s.CancelShipment(reason="order cancelled"))
    with pytest.raises(OfferExpired) as err:
        s.decide(state, accept("a1"))
    assert "cancelled" in err.value.detail


# --- only the assigned agent acts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "command"),
    [
        (S.pending, ship("a2")),
        (S.in_transit, deliver("a2")),
        (S.in_transit, fail("a2")),
        (S.in_transit, s.ReturnToSender(agent_id="a2")),
        (S.failed, retry("a2")),
    ],
)
def test_an_agent_other_than_the_assignee_does_not_find_the_shipment(status, command):
    with pytest.raises(ShipmentNotFound) as err:
        s.decide(given(*REACHING[status]), command)
    assert err.value.code == "SHIPMENT_NOT_FOUND"


def test_an_offered_but_unassigned_shipment_cannot_be_shipped_by_an_agent_of_the_wave():
    with pytest.raises(ShipmentNotFound):
        s.decide(given(create(), offer()), ship("a1"))


# --- ship, mark_failed, return_to_sender, retry_delivery ------------------------------------


def test_shipping_is_the_first_delivery_attempt_with_a_delivery_code():
    [event] = s.decide(given(*ASSIGNED), ship(code_no=7))
    assert isinstance(event, ShipmentInTransit)
    assert (event.attempt, event.delivery_code_hash, event.delivery_code_sealed) == (
        1,
        "hash-7",
        "sealed-7",
    )
    state = s.evolve(given(*ASSIGNED), event)
    assert (state.status, state.attempts, state.code_hash) == (S.in_transit, 1, "hash-7")


@pytest.mark.parametrize("reason", FAILURE_REASONS)
def test_a_delivery_fails_with_any_reason_of_the_contract(reason):
    [event] = s.decide(given(*IN_TRANSIT), fail(reason=reason))
    assert isinstance(event, ShipmentFailed) and event.reason == reason
    state = s.evolve(given(*IN_TRANSIT), event)
    assert (state.status, state.failure_reason) == (S.failed, reason)


def test_an_assigned_shipment_can_fail_before_it_is_shipped():
    [event] = s.decide(given(*ASSIGNED), fail(reason="ADDRESS_NOT_FOUND"))
    assert isinstance(event, ShipmentFailed) and event.agent_id == "a1"


@pytest.mark.parametrize("reason", ["", "LOST", "recipient_absent"])
def test_a_failure_reason_outside_the_contract_is_a_validation_error(reason):
    with pytest.raises(InvalidAgent) as err:
        s.decide(given(*IN_TRANSIT), fail(reason=reason))
    assert err.value.code == "VALIDATION_ERROR"


def test_a_failed_or_returned_shipment_is_sent_out_again_with_a_new_code():
    for status in (S.failed, S.returned):
        state = given(*REACHING[status])
        [event] = s.decide(state, retry(code_no=2))
        assert isinstance(event, ShipmentInTransit)
        assert (event.attempt, event.delivery_code_hash) == (2, "hash-2")
        state = s.evolve(state, event)
        assert (state.status, state.attempts, state.failure_reason) == (S.in_transit, 2, None)


def test_retry_delivery_counts_attempts_up_to_the_maximum_then_only_return_is_left():
    state = given(*IN_TRANSIT, fail(), retry(code_no=2), fail(), retry(code_no=3), fail())
    assert state.attempts == MAX_ATTEMPTS
    with pytest.raises(DeliveryAttemptsExhausted) as err:
        s.decide(state, retry(code_no=4))
    assert err.value.code == "DELIVERY_ATTEMPTS_EXHAUSTED"
    [event] = s.decide(state, s.ReturnToSender(agent_id="a1"))
    assert isinstance(event, ShipmentReturned)
    with pytest.raises(DeliveryAttemptsExhausted):
        s.decide(s.evolve(state, event), retry(code_no=4))


def test_the_maximum_of_attempts_is_the_callers_setting():
    state = given(*IN_TRANSIT, fail())
    with pytest.raises(DeliveryAttemptsExhausted):
        s.decide(state, retry(max_attempts=1))
    assert s.decide(state, retry(max_attempts=2))


# --- delivery code -------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [None, "hash-1", "wrong"])
def test_a_code_given_where_none_is_required_is_ignored(typed):
    [event] = s.decide(given(*IN_TRANSIT), deliver(require_code=False, code_hash=typed))
    assert isinstance(event, ShipmentDelivered)


def test_the_right_code_delivers_where_one_is_required():
    [event] = s.decide(given(*IN_TRANSIT), deliver(require_code=True, code_hash="hash-1"))
    assert isinstance(event, ShipmentDelivered) and event.delivered_at == NOW
    state = s.evolve(given(*IN_TRANSIT), event)
    assert (state.status, state.delivered_at) == (S.delivered, NOW)


def test_a_missing_code_where_one_is_required_is_a_mismatch_that_does_not_count():
    with pytest.raises(DeliveryCodeMismatch) as err:
        s.decide(given(*IN_TRANSIT), deliver(require_code=True, code_hash=None))
    assert err.value.code == "DELIVERY_CODE_MISMATCH"
    assert err.value.events == ()


def test_a_wrong_code_is_a_mismatch_that_records_its_rejection():
    with pytest.raises(DeliveryCodeMismatch) as err:
        s.decide(given(*IN_TRANSIT), deliver(require_code=True, code_hash="wrong"))
    assert err.value.events == (DeliveryCodeRejected(shipment_id="shp_1", agent_id="a1"),)
    assert "4 tries left" in err.value.detail


def test_the_fifth_wrong_code_locks_the_check_and_then_even_the_right_code_is_locked():
    state = given(*IN_TRANSIT)
    wrong = deliver(require_code=True, code_hash="wrong")
    for _ in range(s.MAX_WRONG_CODES - 1):
        state = given_recorded(state, wrong)
    assert state.wrong_codes == s.MAX_WRONG_CODES - 1 and not state.code_locked
    with pytest.raises(DeliveryCodeLocked) as err:
        s.decide(state, wrong)
    assert err.value.code == "DELIVERY_CODE_LOCKED"
    assert err.value.events == (DeliveryCodeRejected(shipment_id="shp_1", agent_id="a1"),)
    state = s.evolve_all(state, err.value.events)  # type: ignore[arg-type]
    assert state.code_locked
    for typed in ("hash-1", "wrong", None):
        with pytest.raises(DeliveryCodeLocked) as err:
            s.decide(state, deliver(require_code=True, code_hash=typed))
        assert err.value.events == ()


def test_a_reset_unlocks_the_check_with_a_new_code():
    state = given(*IN_TRANSIT)
    for _ in range(s.MAX_WRONG_CODES):
        state = given_recorded(state, deliver(require_code=True, code_hash="wrong"))
    assert state.code_locked
    [event] = s.decide(state, s.ResetCode(code=code(9)))
    assert event == DeliveryCodeReset(
        shipment_id="shp_1",
        order_id="ord_1",
        delivery_code_sealed="sealed-9",
        delivery_code_hash="hash-9",
    )
    state = s.evolve(state, event)
    assert not state.code_locked and state.wrong_codes == 0
    with pytest.raises(DeliveryCodeMismatch):
        s.decide(state, deliver(require_code=True, code_hash="hash-1"))  # the old code
    [delivered] = s.decide(state, deliver(require_code=True, code_hash="hash-9"))
    assert isinstance(delivered, ShipmentDelivered)


def test_a_new_attempt_replaces_the_code_and_clears_the_wrong_tries():
    state = given_recorded(given(*IN_TRANSIT), deliver(require_code=True, code_hash="wrong"))
    state = s.evolve_all(state, s.decide(state, fail()))
    state = s.evolve_all(state, s.decide(state, retry(code_no=2)))
    assert (state.wrong_codes, state.code_hash) == (0, "hash-2")
    with pytest.raises(DeliveryCodeMismatch):
        s.decide(state, deliver(require_code=True, code_hash="hash-1"))


@pytest.mark.parametrize("status", [S.pending, S.delivered, S.failed, S.returned, S.cancelled])
def test_a_code_is_reset_only_while_in_transit(status):
    with pytest.raises(InvalidTransition) as err:
        s.decide(given(*REACHING[status]), s.ResetCode(code=code(9)))
    assert err.value.extra == {"current_status": status.value}


# --- cancel --------------------------------------------------------------------------------


def test_cancelling_a_pending_shipment_withdraws_its_open_offer():
    state = given(create(), offer("as_1"))
    [event] = s.decide(state, s.CancelShipment(reason="order refunded"))
    assert event == ShipmentCancelled(
        shipment_id="shp_1",
        order_id="ord_1",
        reason="order refunded",
        withdrawn_assignment_ids=("as_1",),
    )
    state = s.evolve(state, event)
    assert (state.status, state.offer) == (S.cancelled, None)
    assert not state.awaiting_offer


def test_cancelling_a_pending_shipment_without_an_open_offer_withdraws_nothing():
    [event] = s.decide(given(*ASSIGNED), s.CancelShipment(reason="order cancelled"))
    assert isinstance(event, ShipmentCancelled) and event.withdrawn_assignment_ids == ()


@pytest.mark.parametrize(
    "status", [S.new, S.in_transit, S.delivered, S.failed, S.returned, S.cancelled]
)
def test_cancelling_a_shipment_that_is_not_pending_changes_nothing(status):
    assert s.decide(given(*REACHING[status]), s.CancelShipment(reason="order cancelled")) == []


# --- SLA -----------------------------------------------------------------------------------


def test_the_sla_is_breached_once_its_due_time_has_come():
    state = given(*ASSIGNED)
    assert s.decide(state, s.BreachSla(now=SLA_DUE - timedelta(microseconds=1))) == []
    [event] = s.decide(state, s.BreachSla(now=SLA_DUE))
    assert event == ShipmentSlaBreached(
        shipment_id="shp_1", order_id="ord_1", sla_due_at=SLA_DUE, status="pending"
    )
    state = s.evolve(state, event)
    assert state.sla_breached
    assert s.decide(state, s.BreachSla(now=SLA_DUE + timedelta(hours=1))) == []


def test_a_late_delivery_reports_the_breach_together_with_the_delivery():
    late = SLA_DUE + timedelta(minutes=1)
    delivered, breached = s.decide(given(*IN_TRANSIT), deliver(now=late))
    assert isinstance(delivered, ShipmentDelivered) and delivered.delivered_at == late
    assert isinstance(breached, ShipmentSlaBreached) and breached.status == "delivered"
    state = s.evolve_all(given(*IN_TRANSIT), [delivered, breached])
    assert s.decide(state, s.BreachSla(now=late + timedelta(days=1))) == []


def test_a_late_delivery_after_the_breach_was_reported_does_not_report_it_again():
    state = given(*IN_TRANSIT, s.BreachSla(now=SLA_DUE))
    assert [type(e) for e in s.decide(state, deliver(now=SLA_DUE + timedelta(hours=1)))] == [
        ShipmentDelivered
    ]


@pytest.mark.parametrize("at", [NOW, SLA_DUE])
def test_a_shipment_delivered_in_time_never_breaches_its_sla(at):
    events = s.decide(given(*IN_TRANSIT), deliver(now=at))
    assert [type(e) for e in events] == [ShipmentDelivered]
    state = s.evolve_all(given(*IN_TRANSIT), events)
    assert s.decide(state, s.BreachSla(now=SLA_DUE + timedelta(days=30))) == []


@pytest.mark.parametrize("status", [S.new, S.cancelled])
def test_a_cancelled_or_uncreated_shipment_never_breaches_its_sla(status):
    assert s.decide(given(*REACHING[status]), s.BreachSla(now=SLA_DUE + timedelta(days=1))) == []


# --- the transitions table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (action, status)
        for action in COMMAND_FOR
        for status in S
        if status is not S.new and status not in s.TRANSITIONS[action][0]
    ],
)
def test_every_move_outside_the_table_is_an_invalid_transition_naming_the_status(action, status):
    with pytest.raises(InvalidTransition) as err:
        s.decide(given(*REACHING[status]), COMMAND_FOR[action])
    assert err.value.code == "INVALID_TRANSITION"
    assert err.value.extra == {"current_status": status.value}
    assert status.value in err.value.detail


@pytest.mark.parametrize(
    ("action", "status"),
    [(action, status) for action in COMMAND_FOR for status in s.TRANSITIONS[action][0]],
)
def test_every_move_of_the_table_reaches_its_target_status(action, status):
    state = given(*REACHING[status])
    state = s.evolve_all(state, s.decide(state, COMMAND_FOR[action]))
    assert state.status is s.TRANSITIONS[action][1]


def test_the_table_covers_every_agent_action_and_cancel():
    assert set(s.TRANSITIONS) == set(COMMAND_FOR) | {s.Action.cancel}
    assert set(s.ACTION_OF.values()) == set(s.TRANSITIONS)


def test_the_reaching_paths_reach_the_status_they_are_named_after():
    for status, path in REACHING.items():
        assert given(*path).status is status
