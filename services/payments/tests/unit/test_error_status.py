"""Payments' errors meet HTTP once: every code has a status in the api's table, the domain
declares its errors without client libraries, and only the edge raises HTTP problems."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from waybill.common.failures import DomainError
from waybill.common.http.errors import domain_problem
from waybill.common.http.problems import ProblemError, problem_from_exception
from waybill.payments.api import ERROR_STATUS
from waybill.payments.domain.errors import (
    PaymentsError,
    ProviderUnreachable,
    RefundRefusedByProvider,
)
from waybill.payments.signature import SignatureError

SOURCE = Path(__file__).parents[2] / "src" / "waybill" / "payments"


def _codes(base: type[DomainError]) -> set[str]:
    found = {base.code}
    for sub in base.__subclasses__():
        found |= _codes(sub)
    return found


def test_every_payments_error_code_has_an_http_status_in_the_api_table() -> None:
    assert (_codes(PaymentsError) | _codes(SignatureError)) - set(ERROR_STATUS) == set()


def test_the_payments_domain_declares_its_errors_without_client_libraries() -> None:
    probe = (
        "import sys, waybill.payments.domain.errors, waybill.payments.signature; "
        "print([m for m in ('httpx', 'aiokafka', 'sqlalchemy') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_only_the_http_edge_raises_http_problems() -> None:
    raising = [
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*.py")
        if "ProblemError" in path.read_text() and path.name != "api.py"
    ]
    assert raising == []


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
