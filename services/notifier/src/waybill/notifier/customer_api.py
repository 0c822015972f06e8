"""HTTP routes of customer notifications (CONTRACT.md § notifier): ``GET /notifications``, and
who may read the work queues (``GET /admin/queues``, mounted from the kit in ``app``).

Thin: parse, authorise, call, map. A tenant's backend (``service``) reads its customers'
notifications, an admin may too; recipients are masked and no content (a delivery code) is
ever in a response.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from waybill.common.auth import Principal, require_role
from waybill.common.eventstore import Caller
from waybill.common.http.caller import require_caller
from waybill.common.http.pagination import Page, PageParams, page_params
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.notifier.customers import CustomerNotifications
from waybill.notifier.views import NotificationView

router = APIRouter(tags=["customer notifications"])
Backend = Annotated[Caller, Depends(require_caller("service", "admin"))]
OrderId = Annotated[
    str | None,
    Query(pattern=r"^ord_[0-9a-f]{32}$", description="only the notifications of this order"),
]
admin_only = require_role("admin")


async def customers(request: Request) -> CustomerNotifications:
    return request.app.state.customers  # type: ignore[no-any-return]


Customers = Annotated[CustomerNotifications, Depends(customers)]


@router.get("/notifications", response_model=Page[NotificationView])
async def list_notifications(
    svc: Customers,
    caller: Backend,
    page: Annotated[PageParams, Depends(page_params)],
    order_id: OrderId = None,
) -> Page[NotificationView]:
    """The tenant's customer notifications (of one order with ``order_id``), newest first."""
    items, last = await svc.list(
        caller.tenant_id, order_id, limit=page.limit, after=position_from_cursor(page.after)
    )
    return Page[NotificationView](items=items, next_cursor=next_cursor(last))


async def admin_tenant(principal: Annotated[Principal, Depends(admin_only)]) -> str:
    """Who may read ``GET /admin/queues``: a tenant's admins, who see their own jobs."""
    return principal.tenant_id
