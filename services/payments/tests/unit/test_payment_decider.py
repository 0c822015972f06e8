"""Given events, when a command, then events: the payment decider's rules."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybill.payments.domain import payment as p
from waybill.payments.domain.errors import InvalidTransition, RefundExceedsCaptured

CREATE = p.CreatePayment(
    payment_id="pay_1",
    order_id="ord_1",
    amount_cents=1000,
    currency="USD",
    payment_method="pm_card_ok",
    provider="sandbox",
)


def given_commands(*commands: p.Command) -> p.Payment:
    state = p.Payment(payment_id="pay_1")
    for command in commands:
        for event in p.decide(state, command):
            state = p.evolve(state, event)
    return state


def test_payment_id_is_one_per_tenant_and_order():
    assert p.payment_id_for("t1", "ord_1") == p.payment_id_for("t1", "ord_1")
    assert p.payment_id_for("t1", "ord_1") != p.payment_id_for("t2", "ord_1")
    assert p.payment_id_for("t1", "ord_1").startswith("pay_")


def test_a_payment_is_created_once():
    state = given_commands(CREATE)
    assert state.status is p.PaymentStatus.pending
    assert p.decide(state, CREATE) == []


def test_a_late_processing_after_capture_is_ignored():
    state = given_commands(CREATE, p.Capture("pi_1"))
    assert p.decide(state, p.MarkProcessing("pi_1")) == []


def test_a_capture_after_a_failure_is_ignored():
    state = given_commands(CREATE, p.Fail("card_declined", "no"))
    assert p.decide(state, p.Capture("pi_1")) == []
    assert state.status is p.PaymentStatus.failed


def test_a_failure_after_a_capture_is_ignored():
    state = given_commands(CREATE, p.MarkProcessing("pi_1"), p.Capture("pi_1"))
    assert p.decide(state, p.Fail("x", "late")) == []


def test_refunding_a_payment_that_is_not_captured_is_an_invalid_transition():
    with pytest.raises(InvalidTransition):
        p.decide(given_commands(CREATE), p.Refund("re_1", 100))


def test_refunds_never_exceed_the_captured_amount():
    state = given_commands(CREATE, p.Capture("pi_1"), p.Refund("re_1", 600))
    assert state.status is p.PaymentStatus.refunded
    with pytest.raises(RefundExceedsCaptured):
        p.decide(state, p.Refund("re_2", 500))
    state = given_commands(CREATE, p.Capture("pi_1"), p.Refund("re_1", 600), p.Refund("re_2", 400))
    assert state.refunded_cents == 1000
    with pytest.raises(InvalidTransition):
        p.decide(state, p.Refund("re_3", 1))


def test_the_same_provider_refund_recorded_twice_counts_once():
    state = given_commands(CREATE, p.Capture("pi_1"), p.Refund("re_1", 600))
    assert p.decide(state, p.Refund("re_1", 600)) == []


def test_a_closed_order_with_a_captured_payment_needs_a_refund_of_the_rest():
    pending_closed = given_commands(CREATE, p.CloseOrder("cancelled"))
    assert p.next_step(pending_closed) is p.NextStep.charge  # charge in flight: refund after
    captured_closed = given_commands(CREATE, p.CloseOrder("cancelled"), p.Capture("pi_1"))
    assert p.next_step(captured_closed) is p.NextStep.refund
    partly = given_commands(
        CREATE, p.Capture("pi_1"), p.Refund("re_1", 300), p.CloseOrder("expired")
    )
    assert p.next_step(partly) is p.NextStep.refund
    assert partly.refundable_cents == 700
    done = given_commands(CREATE, p.Capture("pi_1"), p.CloseOrder("x"), p.Refund("re_1", 1000))
    assert p.next_step(done) is None


def test_refund_keys_differ_per_refund_and_repeat_for_a_retry():
    captured = given_commands(CREATE, p.Capture("pi_1"))
    assert p.refund_idempotency_key(captured) == "pay_1:refund"
    after_one = given_commands(CREATE, p.Capture("pi_1"), p.Refund("re_1", 100))
    assert p.refund_idempotency_key(after_one) == "pay_1:refund:1"


commands = st.one_of(
    st.just(CREATE),
    st.builds(p.MarkProcessing, st.just("pi_1")),
    st.builds(p.Capture, st.just("pi_1")),
    st.builds(p.Fail, st.sampled_from(["card_declined", "expired_card"]), st.just("no")),
    st.builds(
        p.Refund, st.sampled_from(["re_1", "re_2", "re_3"]), st.integers(-5, 1200), st.none()
    ),
    st.builds(p.CloseOrder, st.sampled_from(["cancelled", "expired"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=12))
def test_no_accepted_command_sequence_moves_a_payment_backwards_or_over_refunds(sequence):
    state = p.Payment(payment_id="pay_1")
    for command in sequence:
        try:
            events = p.decide(state, command)
        except (InvalidTransition, RefundExceedsCaptured, p.PaymentNotFound):
            continue
        for event in events:
            after = p.evolve(state, event)
            assert after.status is state.status or after.status in p.TRANSITIONS[state.status]
            assert after.version == state.version + 1
            state = after
        assert (
            0
            <= state.refunded_cents
            <= (state.amount_cents if state.status is p.PaymentStatus.refunded else 0)
        )
        if state.status is p.PaymentStatus.failed:
            assert state.refunded_cents == 0
