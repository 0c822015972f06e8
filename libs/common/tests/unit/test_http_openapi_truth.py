"""The kit's edge answers what its OpenAPI says: the full ``Allow`` of a 405, integral JSON
numbers for ``integer`` fields, and every kit answer declared with its problem codes."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from waybill.common.auth import require_role
from waybill.common.http.app import create_app
from waybill.common.http.models import JSON_INTEGER, StrictModel
from waybill.common.http.pagination import PageParams, page_params
from waybill.common.settings import WaybillSettings


class StockIn(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    available: Annotated[int, Field(ge=0, le=1000), JSON_INTEGER]


def _app():
    router = APIRouter()

    @router.get("/things/{sku}")
    async def get_thing(sku: str) -> dict[str, str]:
        return {"sku": sku}

    @router.put("/things/{sku}")
    async def put_thing(sku: str, body: StockIn) -> dict[str, int]:
        return {"available": body.available}

    @router.get("/listed", dependencies=[Depends(require_role("admin"))])
    async def listed(page: Annotated[PageParams, Depends(page_params)]) -> dict[str, int]:
        return {"limit": page.limit}

    return create_app(
        service="truth", settings=WaybillSettings(), routers=[router], health_checks={}
    )


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


async def test_a_405_lists_every_method_of_the_path_not_only_one_routes() -> None:
    async with _client() as http:
        response = await http.request("OPTIONS", "/things/abc")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_an_integral_json_number_is_an_integer_and_a_fraction_is_not() -> None:
    async with _client() as http:
        integral = await http.put("/things/a", json={"available": 44.0})
        fraction = await http.put("/things/a", json={"available": 44.5})
        text = await http.put("/things/a", json={"available": "44"})
        boolean = await http.put("/things/a", json={"available": True})
    assert integral.status_code == 200 and integral.json() == {"available": 44}
    for refused in (fraction, text, boolean):
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "VALIDATION_ERROR"


def test_constraints_stay_in_the_schema_with_the_integral_marker() -> None:
    schema = StockIn.model_json_schema()["properties"]["available"]
    assert schema == {"maximum": 1000, "minimum": 0, "title": "Available", "type": "integer"}


def test_every_kit_answer_is_declared_with_its_problem_codes() -> None:
    document = _app().openapi()
    put = document["paths"]["/things/{sku}"]["put"]["responses"]
    listed = document["paths"]["/listed"]["get"]["responses"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert put["422"]["content"] == problem
    for code in ("VALIDATION_ERROR", "MALFORMED_JSON", "JSON_TOO_DEEP"):
        assert code in put["422"]["description"]
    assert "PAYLOAD_TOO_LARGE" in put["413"]["description"]
    assert "DATABASE_UNAVAILABLE" in put["503"]["description"]
    assert "INVALID_CURSOR" in listed["422"]["description"]
    assert "UNAUTHENTICATED" in listed["401"]["description"]
    assert "FORBIDDEN" in listed["403"]["description"]
    assert "AUTH_UNAVAILABLE" in listed["503"]["description"]
    assert "401" not in put  # no API key on that route: no 401 promised
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "code",
    ]


async def test_a_nul_character_is_refused_at_the_edge_not_by_the_database() -> None:
    async with _client() as http:
        in_query = await http.get("/things/a", params={"x": "a\x00b"})
        in_body = await http.put(
            "/things/a",
            content=b'{"available": 1, "n": "a\\u0000"}',
            headers={"content-type": "application/json"},
        )
        escaped = await http.put(
            "/things/a", content=b'{"available": 1}', headers={"content-type": "application/json"}
        )
    for refused in (in_query, in_body):
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "INVALID_CHARACTER"
    assert escaped.status_code == 200
