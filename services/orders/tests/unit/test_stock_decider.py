"""The stock decider: never below zero, never a double reservation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybill.orders.domain import inventory as inv
from waybill.orders.domain.errors import InsufficientStock, InvalidOrder


def run(state: inv.Stock, command: inv.StockCommand) -> inv.Stock:
    for event in inv.decide(state, command):
        state = inv.evolve(state, event)
    return state


def test_reserving_more_than_available_is_refused():
    state = run(inv.Stock("A"), inv.SetStock(3))
    with pytest.raises(InsufficientStock):
        inv.decide(state, inv.Reserve("ord_1", 4))


def test_a_second_reservation_for_the_same_order_is_not_taken_twice():
    state = run(run(inv.Stock("A"), inv.SetStock(5)), inv.Reserve("ord_1", 2))
    assert inv.decide(state, inv.Reserve("ord_1", 2)) == []
    assert state.available == 3


def test_releasing_gives_the_units_back_and_committing_does_not():
    state = run(run(inv.Stock("A"), inv.SetStock(5)), inv.Reserve("ord_1", 2))
    assert run(state, inv.Release("ord_1")).available == 5
    committed = run(state, inv.Commit("ord_1"))
    assert committed.available == 3
    assert committed.reserved == 0


def test_negative_stock_cannot_be_set():
    with pytest.raises(InvalidOrder):
        inv.decide(inv.Stock("A"), inv.SetStock(-1))


order_ids = st.sampled_from(["o1", "o2", "o3", "o4"])
stock_commands = st.one_of(
    st.builds(inv.SetStock, st.integers(min_value=-5, max_value=20)),
    st.builds(inv.Reserve, order_ids, st.integers(min_value=-2, max_value=12)),
    st.builds(inv.Release, order_ids),
    st.builds(inv.Commit, order_ids),
)


@settings(max_examples=400)
@given(st.lists(stock_commands, max_size=30))
def test_no_accepted_command_sequence_drives_stock_below_zero(sequence):
    state = inv.Stock("A")
    for command in sequence:
        try:
            state = run(state, command)
        except (InsufficientStock, InvalidOrder):
            continue
        assert state.available >= 0
        assert all(units > 0 for units in state.reservations.values())
        assert state.reserved >= 0
