"""Newest-first keyset pagination over ``(created_at, id)``: stable under concurrent inserts,
no OFFSET scans. The HTTP layer wraps a position in an opaque cursor (http.pagination)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.http.pagination import encode_cursor

Position = tuple[str, str]  # (created_at ISO 8601, id) of the last item a page showed


async def newest_first_page(
    engine: AsyncEngine,
    query: Select[Any],
    *,
    created: ColumnElement[Any],
    key: ColumnElement[Any],
    limit: int,
    after: Position | None,
) -> tuple[Sequence[Any], Position | None]:
    """Up to ``limit`` rows after ``after``, newest first, and the position of the next page."""
    if after is not None:
        query = query.where(
            func.row(created, key) < func.row(datetime.fromisoformat(after[0]), after[1])
        )
    query = query.order_by(created.desc(), key.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], (last._mapping[created].isoformat(), last._mapping[key])


def position_from_cursor(cursor: dict[str, Any] | None) -> Position | None:
    if cursor is None:
        return None
    return str(cursor.get("c")), str(cursor.get("id"))


def cursor_from_position(position: Position) -> dict[str, Any]:
    return {"c": position[0], "id": position[1]}


def next_cursor(last: Position | None) -> str | None:
    """The ``next_cursor`` of a keyset page that ended at ``last`` (None: the last page)."""
    return encode_cursor(cursor_from_position(last)) if last else None
