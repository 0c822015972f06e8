"""Shipping's errors meet HTTP once: every code has a status in the api's table, the domain
declares its errors without client libraries, and only the edge raises HTTP problems."""

from __future__ import annotations

from pathlib import Path

from waybill.devstack.service_checks import (
    error_codes,
    libraries_imported_by,
    modules_raising_problems,
)
from waybill.shipping.api import ERROR_STATUS
from waybill.shipping.domain.errors import ShippingError
from waybill.shipping.handlers import ShipmentBusy

SOURCE = Path(__file__).parents[2] / "src" / "waybill" / "shipping"


def test_every_shipping_error_code_has_an_http_status_in_the_api_table() -> None:
    assert ShipmentBusy.code in error_codes(ShippingError)  # the handlers' own error too
    assert error_codes(ShippingError) - set(ERROR_STATUS) == set()


def test_the_shipping_domain_declares_its_errors_without_client_libraries() -> None:
    assert libraries_imported_by(["waybill.shipping.domain.errors"]) == []


def test_only_the_http_edge_raises_http_problems() -> None:
    assert modules_raising_problems(SOURCE) == []
