"""Given events, when a command, then events: the order decider's rules."""

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybill.common.contracts.orders import (
    Address,
    Customer,
    LineItem,
    OrderCancelled,
    OrderReturned,
    OrderShipped,
)
from waybill.orders.domain import order as o
from waybill.orders.domain.errors import (
    CannotCancelAfterShipping,
    InvalidOrder,
    InvalidTransition,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


TWO_OF_A = (LineItem(sku="A", quantity=2, unit_price_cents=500),)


def place(items=TWO_OF_A) -> o.PlaceOrder:
    return o.PlaceOrder(
        order_id="ord_1",
        customer=Customer(id="c1", email="c@example.com"),
        items=tuple(items),
        currency="USD",
        shipping_address=Address(line1="1 Main", city="X", postal_code="10001", country="US"),
        payment_method="pm_card_ok",
        expires_at=NOW + timedelta(minutes=15),
    )


def given_events(*commands: o.Command) -> o.Order:
    state = o.Order(order_id="ord_1")
    for command in commands:
        for event in o.decide(state, command):
            state = o.evolve(state, event)
    return state


def test_placing_an_order_totals_its_items_and_awaits_payment():
    state = o.Order(order_id="ord_1")
    [event] = o.decide(state, place())
    assert event.total_cents == 1000
    assert o.evolve(state, event).status is o.OrderStatus.pending_payment


def test_an_order_is_placed_only_once():
    with pytest.raises(InvalidTransition):
        o.decide(given_events(place()), place())


@pytest.mark.parametrize("quantity", [0, -1, o.MAX_QUANTITY + 1])
def test_quantities_outside_the_allowed_range_are_refused(quantity):
    with pytest.raises(InvalidOrder):
        o.decide(
            o.Order("ord_1"), place([LineItem(sku="A", quantity=quantity, unit_price_cents=1)])
        )


def test_an_order_without_items_is_refused():
    with pytest.raises(InvalidOrder):
        o.decide(o.Order("ord_1"), place([]))


def test_cancelling_after_shipping_is_refused_with_its_own_code():
    state = given_events(place(), o.MarkPaid("pay_1"), o.MarkShipped("shp_1"))
    with pytest.raises(CannotCancelAfterShipping) as err:
        o.decide(state, o.CancelOrder())
    assert err.value.code == "ORDER_CANNOT_CANCEL_AFTER_SHIPPING"


def test_a_pending_order_can_be_cancelled():
    [event] = o.decide(given_events(place()), o.CancelOrder(reason="changed mind"))
    assert isinstance(event, OrderCancelled)


def test_expiry_before_the_deadline_does_nothing_and_after_it_expires():
    state = given_events(place())
    assert o.decide(state, o.ExpireOrder(now=NOW)) == []
    [event] = o.decide(state, o.ExpireOrder(now=NOW + timedelta(minutes=16)))
    assert o.evolve(state, event).status is o.OrderStatus.expired


def test_a_paid_order_does_not_expire():
    state = given_events(place(), o.MarkPaid("pay_1"))
    assert o.decide(state, o.ExpireOrder(now=NOW + timedelta(days=1))) == []


def test_the_same_payment_outcome_twice_changes_nothing_the_second_time():
    state = given_events(place(), o.MarkPaid("pay_1"))
    assert o.decide(state, o.MarkPaid("pay_1")) == []


# --- property: no accepted sequence of commands reaches a forbidden status ------------------

commands = st.sampled_from(
    [
        o.MarkPaid("pay_1"),
        o.MarkPaymentFailed("declined"),
        o.CancelOrder(),
        o.ExpireOrder(now=NOW + timedelta(hours=1)),
        o.MarkShipped("shp_1"),
        o.MarkDelivered("shp_1"),
        o.MarkReturned("shp_1"),
    ]
)


@settings(max_examples=300)
@given(st.lists(commands, max_size=12))
def test_no_accepted_command_sequence_leaves_the_state_machine(sequence):
    state = given_events(place())
    for command in sequence:
        before = state.status
        try:
            events = o.decide(state, command)
        except (InvalidTransition, CannotCancelAfterShipping):
            continue
        for event in events:
            state = o.evolve(state, event)
            assert state.status in o.TRANSITIONS[before], (before, state.status)
            before = state.status
        assert state.version >= 1


# --- every move of the table is made by some command, and no other ---------------------------

ALL_COMMANDS = [
    o.MarkPaid("pay_1"),
    o.MarkPaymentFailed("declined"),
    o.CancelOrder(),
    o.ExpireOrder(now=NOW + timedelta(hours=1)),
    o.MarkShipped("shp_1"),
    o.MarkDelivered("shp_1"),
    o.MarkReturned("shp_1"),
]


def test_the_moves_commands_make_are_exactly_the_transitions_table():
    """Every state reachable from a placed order, explored breadth first: the status moves
    the decider makes are TRANSITIONS' (no more, and none of the table's left out)."""
    start = given_events(place())
    table = {(before, after) for before, targets in o.TRANSITIONS.items() for after in targets}
    made = {(o.OrderStatus.new, o.OrderStatus.pending_payment)}
    seen, frontier = {start.status}, [start]
    while frontier:
        state = frontier.pop()
        for command in ALL_COMMANDS:
            try:
                events = o.decide(state, command)
            except (InvalidTransition, CannotCancelAfterShipping):
                continue
            after = state
            for event in events:
                after = o.evolve(after, event)
            if after.status is not state.status:
                made.add((state.status, after.status))
            if after.status not in seen:
                seen.add(after.status)
                frontier.append(after)
    assert made == table


# --- following the shipment ---------------------------------------------------------------


def paid() -> o.Order:
    return given_events(place(), o.MarkPaid("pay_1"))


def test_a_returned_order_whose_shipment_goes_out_again_is_shipped_again_then_delivered():
    state = given_events(
        place(), o.MarkPaid("pay_1"), o.MarkShipped("shp_1"), o.MarkReturned("shp_1")
    )
    assert state.status is o.OrderStatus.returned
    [event] = o.decide(state, o.MarkShipped("shp_1"))
    assert isinstance(event, OrderShipped)
    state = o.evolve(state, event)
    assert state.status is o.OrderStatus.shipped
    [event] = o.decide(state, o.MarkDelivered("shp_1"))
    assert o.evolve(state, event).status is o.OrderStatus.delivered


def test_a_shipment_sent_out_again_after_a_failed_attempt_changes_nothing():
    state = given_events(place(), o.MarkPaid("pay_1"), o.MarkShipped("shp_1"))
    assert o.decide(state, o.MarkShipped("shp_1")) == []


@pytest.mark.parametrize("command", [o.MarkDelivered("shp_1"), o.MarkReturned("shp_1")])
def test_the_same_shipment_news_twice_changes_nothing_the_second_time(command):
    state = given_events(place(), o.MarkPaid("pay_1"), o.MarkShipped("shp_1"), command)
    assert state.status is command.target
    assert o.decide(state, command) == []


def test_a_shipment_returned_before_it_went_out_returns_the_paid_order():
    [event] = o.decide(paid(), o.MarkReturned("shp_1"))
    assert isinstance(event, OrderReturned)
    assert o.evolve(paid(), event).status is o.OrderStatus.returned


@pytest.mark.parametrize(
    "command", [o.MarkShipped("shp_1"), o.MarkDelivered("shp_1"), o.MarkReturned("shp_1")]
)
def test_shipment_news_for_an_order_cancelled_meanwhile_is_ignored_not_refused(command):
    state = given_events(place(), o.MarkPaid("pay_1"), o.CancelOrder())
    assert o.ignores_shipment(state)
    assert o.decide(state, command) == []


@pytest.mark.parametrize(
    ("commands", "news"),
    [
        ((), o.MarkShipped("shp_1")),  # an unpaid order has no shipment
        ((o.MarkPaid("pay_1"),), o.MarkDelivered("shp_1")),  # delivered, never sent out
        ((o.MarkPaid("pay_1"), o.MarkShipped("s"), o.MarkDelivered("s")), o.MarkShipped("s")),
    ],
)
def test_shipment_news_that_skips_a_step_is_an_invalid_transition(commands, news):
    state = given_events(place(), *commands)
    assert not o.ignores_shipment(state)
    with pytest.raises(InvalidTransition):
        o.decide(state, news)


# The shipment's own machine (CONTRACT.md § shipping): action -> status, per status.
SHIPMENT_MOVES = {
    "pending": {"ship": "in_transit", "mark_failed": "failed"},
    "in_transit": {"deliver": "delivered", "mark_failed": "failed", "return_to_sender": "returned"},
    "failed": {"return_to_sender": "returned", "retry_delivery": "in_transit"},
    "returned": {"retry_delivery": "in_transit"},
    "delivered": {},
}
# The shipment statuses orders follows, and the command each one's event asks for.
FOLLOWED = {"in_transit": o.MarkShipped, "delivered": o.MarkDelivered, "returned": o.MarkReturned}


@settings(max_examples=300)
@given(
    choices=st.lists(st.integers(min_value=0, max_value=2), max_size=10),
    redelivered=st.lists(st.booleans(), min_size=10, max_size=10),
    cancel_at=st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
)
def test_any_shipment_walk_is_followed_without_a_refusal_and_the_order_ends_where_it_did(
    choices, redelivered, cancel_at
):
    """Any walk of the shipment's machine, each news possibly delivered twice, with the order
    possibly cancelled at any point (refused once shipped): the decider never raises, and the
    order ends in the status of the shipment's last followed news (cancelled if that came
    first), i.e. a real shipment never dead-letters in orders."""
    state, shipment, last_news, news_before_cancel = paid(), "pending", None, None
    for step, choice in enumerate(choices):
        if cancel_at == step:
            with contextlib.suppress(CannotCancelAfterShipping):
                state = given_events_on(state, o.CancelOrder())
                news_before_cancel = last_news
        moves = sorted(SHIPMENT_MOVES[shipment].items())
        if not moves:
            break
        _, shipment = moves[choice % len(moves)]
        if shipment not in FOLLOWED:
            continue
        last_news = FOLLOWED[shipment]("shp_1")
        for _ in range(2 if redelivered[step] else 1):
            state = given_events_on(state, last_news)  # raises on a refusal
    if state.status is o.OrderStatus.cancelled:
        assert news_before_cancel is None  # cancelled while nothing had moved it yet
    else:
        assert state.status is (last_news.target if last_news else o.OrderStatus.paid)


def given_events_on(state: o.Order, command: o.Command) -> o.Order:
    for event in o.decide(state, command):
        state = o.evolve(state, event)
    return state


@pytest.mark.parametrize("closing", [o.CancelOrder(), o.ExpireOrder(now=NOW + timedelta(hours=1))])
def test_a_payment_outcome_for_a_closed_order_changes_nothing(closing):
    state = given_events(place(), closing)
    assert o.decide(state, o.MarkPaid("pay_1")) == []
    assert o.decide(state, o.MarkPaymentFailed("declined")) == []
