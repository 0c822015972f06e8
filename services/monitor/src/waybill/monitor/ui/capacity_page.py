"""``GET /ui/capacity``: agent capacity and hotspots (from shipping), per postal code and per
agent, with a chart of each postal code's utilisation. The figures are ``/api/overview``'s
``capacity`` (the same function), so the page and the API cannot disagree."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from waybill.common.contracts.shipping import HOTSPOT_UTILISATION
from waybill.monitor.ui.rendering import overview_figures, page
from waybill.monitor.ui.sessions import AdminSession

router = APIRouter(include_in_schema=False)


@router.get("/ui/capacity")
async def capacity(request: Request, admin: AdminSession) -> Response:
    figures = await overview_figures(request, admin.principal.tenant_id)
    load = figures.capacity
    return page(
        request,
        "capacity.html",
        session=admin.session,
        admin=admin,
        capacity=load,
        hotspots=[code for code in load.postal_codes if code.hotspot],
        threshold=HOTSPOT_UTILISATION,
        nav="capacity",
    )
