"""The provider's webhook signature: only a fresh, matching signature passes."""

import pytest

from waybill.payments import signature
from waybill.payments.api import ERROR_STATUS
from waybill.payments.signature import SignatureError, TimestampOutOfTolerance

SECRET = "whsec_test"  # noqa: S105 - a test secret
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'
NOW = 1_800_000_000


def test_a_fresh_signature_of_the_body_is_accepted():
    signature.verify(signature.sign(BODY, SECRET, NOW), BODY, SECRET, tolerance_s=300, now=NOW)


def test_one_matching_v1_among_several_is_enough():
    good = signature.sign(BODY, SECRET, NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good}"
    signature.verify(header, BODY, SECRET, tolerance_s=300, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        signature.sign(BODY, "whsec_other", NOW),  # another secret
        signature.sign(BODY + b" ", SECRET, NOW),  # another body
        f"t={NOW},v1=" + "0" * 64,
    ],
)
def test_a_signature_that_does_not_match_is_refused(header):
    with pytest.raises(SignatureError) as raised:
        signature.verify(header, BODY, SECRET, tolerance_s=300, now=NOW)
    assert raised.value.code == "INVALID_SIGNATURE"
    assert ERROR_STATUS[raised.value.code] == 400


@pytest.mark.parametrize("skew", [-601, 301, 10 * 60])
def test_a_timestamp_outside_the_tolerance_is_refused_even_if_signed(skew):
    header = signature.sign(BODY, SECRET, NOW - skew)
    with pytest.raises(TimestampOutOfTolerance) as raised:
        signature.verify(header, BODY, SECRET, tolerance_s=300, now=NOW)
    assert raised.value.code == "TIMESTAMP_OUT_OF_TOLERANCE"


@pytest.mark.parametrize(
    "header", [None, "", "garbage", f"t={NOW}", "v1=abc", "t=soon,v1=abc", f"t={NOW};v1=abc"]
)
def test_a_missing_or_malformed_header_is_refused(header):
    with pytest.raises(SignatureError):
        signature.verify(header, BODY, SECRET, tolerance_s=300, now=NOW)
