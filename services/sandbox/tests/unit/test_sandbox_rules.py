"""Pure rules of the sandbox: signatures, fault dice, refund amounts, request fingerprints."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from waybill.sandbox import signing
from waybill.sandbox.errors import ProviderError
from waybill.sandbox.faults import Fault, FaultKnobs, FaultsUpdate
from waybill.sandbox.idempotency import request_hash
from waybill.sandbox.provider import _refund_amount
from waybill.sandbox.settings import SandboxSettings


def test_signature_verifies_only_the_exact_body_secret_and_fresh_time():
    header = signing.sign("whsec_x", b'{"a":1}', 1_000)
    assert signing.verify("whsec_x", b'{"a":1}', header, now=1_100)
    assert not signing.verify("whsec_y", b'{"a":1}', header, now=1_100)
    assert not signing.verify("whsec_x", b'{"a":2}', header, now=1_100)
    assert not signing.verify("whsec_x", b'{"a":1}', header, now=1_000 + 301)


def test_each_rate_of_one_always_draws_its_fault_and_zero_never_does():
    knobs = FaultKnobs(SandboxSettings(), random.Random(1))
    assert {knobs.draw_request_fault() for _ in range(200)} == {None}
    for knob, fault in [
        ("error_rate", Fault.error),
        ("reset_rate", Fault.reset),
        ("timeout_rate", Fault.timeout),
        ("rate_limit_rate", Fault.rate_limit),
    ]:
        knobs.reset()
        knobs.update(FaultsUpdate(**{knob: 1.0}))
        assert {knobs.draw_request_fault() for _ in range(50)} == {fault}


def test_fault_rates_are_roughly_honoured():
    knobs = FaultKnobs(SandboxSettings(sandbox_error_rate=0.3), random.Random(7))
    errors = sum(knobs.draw_request_fault() is Fault.error for _ in range(10_000))
    assert 2_700 < errors < 3_300


def _intent(status="succeeded", amount=1000, refunded=0):
    return SimpleNamespace(id="pi_1", status=status, amount=amount, amount_refunded=refunded)


@pytest.mark.parametrize(
    ("intent", "requested", "code"),
    [
        (_intent(status="processing"), None, "charge_not_captured"),
        (_intent(status="requires_payment_method"), None, "charge_not_captured"),
        (_intent(refunded=1000), None, "charge_already_refunded"),
        (_intent(refunded=600), 401, "amount_too_large"),
    ],
)
def test_refund_rules_reject_with_a_stable_code(intent, requested, code):
    with pytest.raises(ProviderError) as raised:
        _refund_amount(intent, requested)
    assert raised.value.code == code and raised.value.status == 400


def test_refund_defaults_to_the_remaining_amount():
    assert _refund_amount(_intent(refunded=250), None) == 750
    assert _refund_amount(_intent(refunded=250), 750) == 750


def test_request_fingerprint_ignores_key_order_but_not_path_or_values():
    body = {"amount": 1, "currency": "usd"}
    assert request_hash("/v1/a", body) == request_hash("/v1/a", dict(reversed(body.items())))
    assert request_hash("/v1/a", body) != request_hash("/v1/b", body)
    assert request_hash("/v1/a", body) != request_hash("/v1/a", {**body, "amount": 2})
