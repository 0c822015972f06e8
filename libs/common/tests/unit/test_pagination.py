"""Cursor pagination: opaque cursors round-trip, bad cursors and limits are 422 problems."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends

from waybill.common.http.app import create_app
from waybill.common.http.pagination import (
    Page,
    PageParams,
    decode_cursor,
    encode_cursor,
    page_params,
)
from waybill.common.http.problems import ProblemError
from waybill.common.settings import WaybillSettings


def _client() -> httpx.AsyncClient:
    router = APIRouter()

    @router.get("/things")
    async def list_things(page: Annotated[PageParams, Depends(page_params)]) -> Page[int]:
        start = page.after["n"] if page.after else 0
        items = list(range(start, min(start + page.limit, 120)))
        next_cursor = encode_cursor({"n": items[-1] + 1}) if items and items[-1] < 119 else None
        return Page[int](items=items, next_cursor=next_cursor)

    app = create_app(
        service="things", settings=WaybillSettings(), routers=[router], health_checks={}
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_a_cursor_round_trips_its_position() -> None:
    position = {"created_at": "2026-01-01T00:00:00Z", "id": "a/b+c", "n": 3}
    cursor = encode_cursor(position)
    assert decode_cursor(cursor) == position
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor


@pytest.mark.parametrize("cursor", ["not base64 at all!", "W10", "eyJh", "x" * 5000, ""])
def test_a_cursor_we_did_not_issue_is_invalid_cursor(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)
    assert (raised.value.status, raised.value.code) == (422, "INVALID_CURSOR")


async def test_following_next_cursor_visits_every_item_once() -> None:
    seen: list[Any] = []
    async with _client() as http:
        response = await http.get("/things")
        assert len(response.json()["items"]) == 50  # the default limit
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 40}
            if cursor is not None:
                params["cursor"] = cursor
            body = (await http.get("/things", params=params)).json()
            seen.extend(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert seen == list(range(120))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "garbage!!"}, "INVALID_CURSOR"),
        ({"limit": 0}, "VALIDATION_ERROR"),
        ({"limit": 201}, "VALIDATION_ERROR"),
        ({"limit": "ten"}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_page_parameters_are_422_problems(params: dict[str, Any], code: str) -> None:
    async with _client() as http:
        response = await http.get("/things", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
