"""Payments' errors meet HTTP once: every code has a status in the api's table, the domain
declares its errors without client libraries, and only the edge raises HTTP problems."""

from __future__ import annotations

from pathlib import Path

from waybill.common.http.errors import domain_problem
from waybill.common.http.problems import ProblemError, problem_from_exception
from waybill.devstack.service_checks import (
    error_codes,
    libraries_imported_by,
    modules_raising_problems,
)
from waybill.payments.api import ERROR_STATUS
from waybill.payments.domain.errors import (
    PaymentsError,
    ProviderUnreachable,
    RefundRefusedByProvider,
)
from waybill.payments.signature import SignatureError

SOURCE = Path(__file__).parents[2] / "src" / "waybill" / "payments"


def test_every_payments_error_code_has_an_http_status_in_the_api_table() -> None:
    assert error_codes(PaymentsError, SignatureError) - set(ERROR_STATUS) == set()


def test_the_payments_domain_declares_its_errors_without_client_libraries() -> None:
    modules = ["waybill.payments.domain.errors", "waybill.payments.signature"]
    assert libraries_imported_by(modules) == []


def test_only_the_http_edge_raises_http_problems() -> None:
    assert modules_raising_problems(SOURCE) == []


def test_refund_errors_render_exactly_as_the_problems_refunds_used_to_raise() -> None:
    # What refunds.py raised before the codes moved to the table (ProblemError at the edge).
    unavailable_before = ProblemError(
        503,
        "PROVIDER_UNAVAILABLE",
        "Payment provider unavailable",
        "The payment provider cannot be reached right now; retry shortly.",
        headers={"Retry-After": "5"},
    )
    rejected_before = ProblemError(
        409,
        "PROVIDER_REJECTED",
        "Refused by the payment provider",
        "charge already refunded",
        {"provider_code": "charge_already_refunded"},
    )
    unavailable = ProviderUnreachable(
        "The payment provider cannot be reached right now; retry shortly.", retry_after_s=5
    )
    rejected = RefundRefusedByProvider(
        "charge already refunded", extra={"provider_code": "charge_already_refunded"}
    )
    for now, before in [(unavailable, unavailable_before), (rejected, rejected_before)]:
        expected = problem_from_exception(before)
        assert expected is not None
        rendered = domain_problem(now, ERROR_STATUS)
        assert (rendered.status, rendered.body, rendered.headers) == (
            expected.status,
            expected.body,
            expected.headers,
        )
