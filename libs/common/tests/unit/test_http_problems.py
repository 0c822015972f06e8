"""Bad input gets a clear problem+json with a stable code, and the handler never runs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI

from waybill.common.eventstore import ConcurrencyError
from waybill.common.failures import DomainError, FailureType
from waybill.common.http.app import create_app
from waybill.common.http.models import StrictModel
from waybill.common.http.problems import PROBLEM_CONTENT_TYPE, problem_type
from waybill.common.settings import WaybillSettings


class Widget(StrictModel):
    name: str
    quantity: int
    attributes: dict[str, Any] = {}


class WidgetOutOfStock(DomainError):
    """A domain error does not know the HTTP kit: only a code (and a failure class)."""

    code = "WIDGET_OUT_OF_STOCK"


class WidgetLocked(DomainError):
    code = "WIDGET_LOCKED"


class WidgetSupplierDown(DomainError):
    code = "WIDGET_SUPPLIER_DOWN"
    title = "Widget supplier unavailable"
    failure_type = FailureType.EXTERNAL_SERVICE_UNAVAILABLE


class WidgetMissing(DomainError):
    """A code the service forgot to put in its table."""

    code = "WIDGET_MISSING"
    failure_type = FailureType.PERMANENT_NOT_FOUND


# The service's one code -> status table (its api's ERROR_STATUS).
WIDGET_ERROR_STATUS = {
    "WIDGET_OUT_OF_STOCK": 409,
    "WIDGET_LOCKED": 423,
    "WIDGET_SUPPLIER_DOWN": 503,
}


def build_app(written: list[Any], **kwargs: Any) -> FastAPI:
    """An app whose ``POST /widgets`` records every body it accepts in ``written``."""
    router = APIRouter()

    @router.post("/widgets", status_code=201)
    async def create_widget(widget: Widget) -> Widget:
        written.append(widget)
        return widget

    @router.get("/widgets/{widget_id}")
    async def get_widget(widget_id: int) -> dict[str, Any]:
        return {"id": widget_id, "context": structlog.contextvars.get_contextvars()}

    @router.post("/widgets/{widget_id}/sell")
    async def sell_widget(widget_id: int) -> None:
        raise WidgetOutOfStock(f"widget {widget_id} is sold out")

    @router.post("/widgets/{widget_id}/rename")
    async def rename_widget(widget_id: int) -> None:
        raise ConcurrencyError(f"widget-{widget_id}", expected_version=3, actual_version=4)

    @router.post("/widgets/{widget_id}/lock")
    async def lock_widget(widget_id: int) -> None:
        raise WidgetLocked(f"widget {widget_id} is locked")

    @router.post("/widgets/{widget_id}/restock")
    async def restock_widget(widget_id: int) -> None:
        raise WidgetSupplierDown(
            f"no supplier answers for widget {widget_id}",
            retry_after_s=7.9,
            extra={"supplier": "acme"},
        )

    @router.get("/widgets/{widget_id}/origin")
    async def widget_origin(widget_id: int) -> None:
        raise WidgetMissing(f"widget {widget_id} has no origin")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    kwargs.setdefault("health_checks", {})
    kwargs.setdefault("error_status", WIDGET_ERROR_STATUS)
    return create_app(
        service="widgets",
        settings=WaybillSettings(),
        routers=[router, *kwargs.pop("routers", [])],
        **kwargs,
    )


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


JSON = {"content-type": "application/json"}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BAD_BODIES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("malformed_json", b'{"name": "a",', JSON, 422, "MALFORMED_JSON"),
    ("invalid_utf8", b'{"name": "\xff\xfe", "quantity": 1}', JSON, 422, "MALFORMED_JSON"),
    ("wrong_type", b'{"name": "a", "quantity": "many"}', JSON, 422, "VALIDATION_ERROR"),
    (
        "unknown_field",
        b'{"name": "a", "quantity": 1, "colour": "red"}',
        JSON,
        422,
        "VALIDATION_ERROR",
    ),
    ("missing_field", b'{"name": "a"}', JSON, 422, "VALIDATION_ERROR"),
    ("array_not_object", b"[1, 2]", JSON, 422, "VALIDATION_ERROR"),
    ("empty_body", b"", JSON, 422, "VALIDATION_ERROR"),
    (
        "not_json_content_type",
        b'{"name": "a", "quantity": 1}',
        {"content-type": "text/plain"},
        422,
        "VALIDATION_ERROR",
    ),
    (
        "two_mib_body",
        b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'", "quantity": 1}',
        JSON,
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    ("nested_100k_levels", _nested(100_000), JSON, 422, "JSON_TOO_DEEP"),
    (
        "nested_500_levels_in_a_free_form_field",
        b'{"name": "a", "quantity": 1, "attributes": {"x": ' + _nested(500) + b"}}",
        JSON,
        422,
        "JSON_TOO_DEEP",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
async def test_bad_input_is_a_4xx_problem_and_writes_nothing(
    body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    written: list[Any] = []
    async with client(build_app(written)) as http:
        response = await http.post("/widgets", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"] == problem_type(code)
    assert problem["title"]
    assert written == []


async def test_a_valid_body_reaches_the_handler() -> None:
    written: list[Any] = []
    async with client(build_app(written)) as http:
        response = await http.post("/widgets", json={"name": "a", "quantity": 2})
    assert response.status_code == 201
    assert len(written) == 1


async def test_validation_errors_list_the_fields_without_echoing_input() -> None:
    async with client(build_app([])) as http:
        response = await http.post("/widgets", json={"name": "secret-value", "quantity": "x"})
    errors = response.json()["errors"]
    assert errors == [{"loc": ["body", "quantity"], "msg": errors[0]["msg"], "type": "int_parsing"}]
    assert "secret-value" not in response.text


async def test_unknown_route_and_method_are_problems() -> None:
    async with client(build_app([])) as http:
        missing = await http.get("/nothing-here")
        wrong_method = await http.delete("/widgets")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert missing.json()["code"] == "NOT_FOUND"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in wrong_method.headers["allow"]


async def test_domain_errors_keep_their_code_and_get_the_status_of_the_service_table() -> None:
    async with client(build_app([])) as http:
        duck_typed = await http.post("/widgets/7/sell")
        subclassed = await http.post("/widgets/7/lock")
    assert duck_typed.status_code == 409
    assert duck_typed.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert duck_typed.json() == {
        "type": "https://waybill.dev/problems/widget-out-of-stock",
        "title": "Widget out of stock",
        "status": 409,
        "detail": "widget 7 is sold out",
        "code": "WIDGET_OUT_OF_STOCK",
        "instance": "/widgets/7/sell",
    }
    assert subclassed.status_code == 423
    assert subclassed.json()["code"] == "WIDGET_LOCKED"


async def test_a_domain_error_brings_its_title_extra_members_and_retry_after() -> None:
    async with client(build_app([])) as http:
        response = await http.post("/widgets/3/restock")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["retry-after"] == "7"
    assert response.json() == {
        "supplier": "acme",
        "type": "https://waybill.dev/problems/widget-supplier-down",
        "title": "Widget supplier unavailable",
        "status": 503,
        "detail": "no supplier answers for widget 3",
        "code": "WIDGET_SUPPLIER_DOWN",
        "instance": "/widgets/3/restock",
    }


async def test_a_code_missing_from_the_table_follows_its_failure_type_and_is_logged() -> None:
    with structlog.testing.capture_logs() as logs:
        async with client(build_app([])) as http:
            response = await http.get("/widgets/5/origin")
    assert response.status_code == 404
    assert response.json()["code"] == "WIDGET_MISSING"
    (entry,) = [e for e in logs if e["event"] == "http_error_status_unmapped"]
    assert entry["code"] == "WIDGET_MISSING" and entry["status"] == 404


async def test_an_unexpected_exception_is_a_logged_500_problem_with_the_correlation_id() -> None:
    with structlog.testing.capture_logs() as logs:
        async with client(build_app([])) as http:
            response = await http.get("/boom", headers={"x-correlation-id": "corr-boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert "a bug" not in response.text  # internals stay in the log
    assert response.headers["x-correlation-id"] == "corr-boom-1"
    (entry,) = [e for e in logs if e["event"] == "http_request_failed"]
    assert entry["log_level"] == "error"
    assert entry["exc_info"] is True  # logged with its stack


async def test_a_lost_race_for_a_stream_is_a_409_to_try_again_not_a_500() -> None:
    async with client(build_app([])) as http:
        response = await http.post("/widgets/7/rename")
    assert response.status_code == 409
    assert response.json()["code"] == "CONCURRENT_MODIFICATION"
    assert response.headers["retry-after"] == "1"


async def test_path_parameter_of_the_wrong_type_is_a_422() -> None:
    async with client(build_app([])) as http:
        response = await http.get("/widgets/not-a-number")
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_the_correlation_id_is_echoed_and_bound_to_the_log_context() -> None:
    async with client(build_app([])) as http:
        given = await http.get("/widgets/1", headers={"x-correlation-id": "abc-123"})
        generated = await http.get("/widgets/1")
        unsafe = await http.get("/widgets/1", headers={"x-correlation-id": "bad id; drop table"})
    assert given.headers["x-correlation-id"] == "abc-123"
    assert given.json()["context"]["correlation_id"] == "abc-123"
    assert len(generated.headers["x-correlation-id"]) == 36
    assert generated.json()["context"]["correlation_id"] == generated.headers["x-correlation-id"]
    assert unsafe.headers["x-correlation-id"] != "bad id; drop table"


async def test_metrics_expose_the_http_histogram_by_route_template() -> None:
    async with client(build_app([])) as http:
        await http.get("/widgets/41")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    expected = (
        'waybill_http_request_duration_seconds_count{method="GET",'
        'route="/widgets/{widget_id}",service="widgets",status="200"}'
    )
    assert expected in response.text


async def test_health_live_and_asyncapi_and_openapi_are_served() -> None:
    async with client(build_app([], asyncapi=lambda: {"asyncapi": "3.0.0"})) as http:
        live = await http.get("/health/live")
        asyncapi = await http.get("/asyncapi.json")
        openapi = await http.get("/openapi.json")
        docs = await http.get("/docs")
    assert live.json() == {"status": "alive"}
    assert asyncapi.json() == {"asyncapi": "3.0.0"}
    assert "/widgets" in json.loads(openapi.text)["paths"]
    assert docs.status_code == 200
