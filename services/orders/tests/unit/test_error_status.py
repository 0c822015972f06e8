"""Orders' errors meet HTTP once: every code has a status in the api's table, the domain
declares its errors without client libraries, and only the edge raises HTTP problems."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from waybill.orders.api import ERROR_STATUS
from waybill.orders.domain.errors import OrdersError

SOURCE = Path(__file__).parents[2] / "src" / "waybill" / "orders"


def _codes(base: type[OrdersError]) -> set[str]:
    found = {base.code}
    for sub in base.__subclasses__():
        found |= _codes(sub)
    return found


def test_every_orders_error_code_has_an_http_status_in_the_api_table() -> None:
    assert _codes(OrdersError) - set(ERROR_STATUS) == set()


def test_the_orders_domain_declares_its_errors_without_client_libraries() -> None:
    probe = (
        "import sys, waybill.orders.domain.errors; "
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
