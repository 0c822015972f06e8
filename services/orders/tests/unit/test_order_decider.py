"""Given events, when a command, then events: the order decider's rules."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybill.common.contracts.orders import Address, Customer, LineItem, OrderCancelled
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


@pytest.mark.parametrize("closing", [o.CancelOrder(), o.ExpireOrder(now=NOW + timedelta(hours=1))])
def test_a_payment_outcome_for_a_closed_order_changes_nothing(closing):
    state = given_events(place(), closing)
    assert o.decide(state, o.MarkPaid("pay_1")) == []
    assert o.decide(state, o.MarkPaymentFailed("declined")) == []
