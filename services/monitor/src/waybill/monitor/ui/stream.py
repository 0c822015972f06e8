"""``GET /ui/stream``: the overview's figures as server-sent events, every few seconds.

Each event is the ``/api/overview`` answer (``event: overview``); the page swaps its numbers.
The session's key is checked again before every event, so a revoked key's stream ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from waybill.monitor.ui.rendering import overview_figures
from waybill.monitor.ui.sessions import LoginRequired, current_admin

router = APIRouter(include_in_schema=False)
EVERY_S = 3.0
RECONNECT_MS = 5000


@router.get("/ui/stream")
async def stream(request: Request) -> Response:
    try:
        admin = await current_admin(request)
    except LoginRequired:
        return PlainTextResponse("log in first", status_code=401)
    return StreamingResponse(
        _events(request, admin.principal.tenant_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, tenant_id: str) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    while not await request.is_disconnected():
        try:
            await current_admin(request)
        except LoginRequired:
            yield "event: logged_out\ndata: {}\n\n"
            return
        figures = await overview_figures(request, tenant_id)
        yield f"event: overview\ndata: {figures.model_dump_json()}\n\n"
        # A period between two snapshots, not a wait for a condition.
        await asyncio.sleep(EVERY_S)
