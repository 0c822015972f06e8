"""Cursor pagination: ``?limit=&cursor=`` in, ``{"items":[...],"next_cursor":...}`` out.

A cursor is the position after the last item returned (e.g. ``{"created_at":..,"id":..}``),
JSON in URL-safe base64. It is opaque to clients: they only hand it back. It is not signed;
it only ever narrows a query the caller is already allowed to run, so tampering gains nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from waybill.common.http.problems import ProblemError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 2048

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None
    after: dict[str, Any] | None  # the decoded cursor: the position to continue after


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True, default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _invalid_cursor() -> ProblemError:
    return ProblemError(
        422,
        "INVALID_CURSOR",
        "Invalid cursor",
        "The cursor is not one this API returned; start again without it.",
    )


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The position inside ``cursor``; ProblemError 422 ``INVALID_CURSOR`` if it is not ours."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(position, dict):
        raise _invalid_cursor()
    return position


async def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    """FastAPI dependency: validated ``limit`` and ``cursor`` (bad values -> 422)."""
    return PageParams(limit=limit, cursor=cursor, after=decode_cursor(cursor) if cursor else None)
