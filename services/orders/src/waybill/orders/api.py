"""HTTP routes of the orders service (CONTRACT.md § orders). Thin: parse, authorise, call, map."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from waybill.common.auth import Principal, require_role
from waybill.common.contracts.orders import Address, Customer, LineItem
from waybill.common.eventstore import Caller
from waybill.common.http.caller import require_caller
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.openapi import problem_responses
from waybill.common.http.pagination import (
    Page,
    PageParams,
    page_params,
)
from waybill.common.http.streams import EventView, after_version, stream_page
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.orders.domain import errors
from waybill.orders.domain import order as o
from waybill.orders.domain.order import OrderStatus
from waybill.orders.handlers import OrderHandlers, request_fingerprint
from waybill.orders.schemas import SKU_PATTERN, PlaceOrderIn, SetStockIn
from waybill.orders.views import OrderView, StockView

router = APIRouter()
Sku = Annotated[str, Path(pattern=SKU_PATTERN)]
OrderId = Annotated[str, Path(pattern=r"^ord_[0-9a-f]{32}$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes retries safe: the same key and body answer the first order again "
        "for WAYBILL_ORDERS_IDEMPOTENCY_TTL_S (default 86400 s, 24 h); after that the key is "
        "forgotten and a request with it is a new order.",
    ),
]

service_or_admin = require_role("service", "admin")
ServiceCaller = Annotated[Caller, Depends(require_caller("service"))]
ServiceOrAdminCaller = Annotated[Caller, Depends(require_caller("service", "admin"))]
AdminCaller = Annotated[Caller, Depends(require_caller("admin"))]

# The one place orders' error codes meet HTTP (STYLE.md #14), handed to create_app.
ERROR_STATUS: ErrorStatus = {
    errors.OrdersError.code: 409,
    errors.InsufficientStock.code: 409,
    errors.InvalidTransition.code: 409,
    errors.CannotCancelAfterShipping.code: 409,
    errors.OrderNotFound.code: 404,
    errors.InvalidOrder.code: 422,
    errors.IdempotencyKeyReused.code: 422,
    errors.SkuNotFound.code: 404,
}


async def handlers(request: Request) -> OrderHandlers:
    return request.app.state.handlers  # type: ignore[no-any-return]


Handlers = Annotated[OrderHandlers, Depends(handlers)]


@router.put("/inventory/{sku}", response_model=StockView, tags=["inventory"])
async def set_stock(sku: Sku, body: SetStockIn, svc: Handlers, caller: AdminCaller) -> StockView:
    """Set the units of ``sku`` available for sale (admin)."""
    return await svc.set_stock(caller, sku, body.available)


@router.get("/inventory/{sku}", response_model=StockView, tags=["inventory"])
async def get_stock(
    sku: Sku, svc: Handlers, principal: Annotated[Principal, Depends(service_or_admin)]
) -> StockView:
    return await svc.get_stock(principal.tenant_id, sku)


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderView,
    tags=["orders"],
    responses=problem_responses(
        {404: ["SKU_NOT_FOUND"], 409: ["INSUFFICIENT_STOCK"], 422: ["IDEMPOTENCY_KEY_REUSED"]}
    ),
)
async def place_order(
    body: PlaceOrderIn,
    response: Response,
    svc: Handlers,
    caller: ServiceCaller,
    idempotency_key: IdempotencyKey = None,
) -> OrderView:
    """Place an order and reserve its stock.

    With an ``Idempotency-Key``: the same key and body answer the same order again (with
    ``Idempotent-Replayed: true``); the same key with another body is 422
    ``IDEMPOTENCY_KEY_REUSED``. Keys are kept ``WAYBILL_ORDERS_IDEMPOTENCY_TTL_S`` (default
    86400 s = 24 h); after that the same key is a new request.
    """
    command = o.PlaceOrder(
        order_id=f"ord_{uuid.uuid4().hex}",
        customer=Customer.model_validate(body.customer.model_dump()),
        items=tuple(LineItem.model_validate(i.model_dump()) for i in body.items),
        currency=str(body.currency),
        shipping_address=Address.model_validate(body.shipping_address.model_dump()),
        payment_method=body.payment_method,
        expires_at=svc.clock() + svc.reservation_ttl,
    )
    idempotency = None
    if idempotency_key is not None:
        idempotency = (idempotency_key, request_fingerprint(body.model_dump(mode="json")))
    view, created = await svc.place_order(caller, command, idempotency)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get("/orders", response_model=Page[OrderView], tags=["orders"])
async def list_orders(
    svc: Handlers,
    principal: Annotated[Principal, Depends(service_or_admin)],
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[OrderStatus | None, Query()] = None,
) -> Page[OrderView]:
    items, last = await svc.list_orders(
        principal.tenant_id,
        status=status.value if status else None,
        limit=page.limit,
        after=position_from_cursor(page.after),
    )
    return Page[OrderView](items=items, next_cursor=next_cursor(last))


@router.get(
    "/orders/{order_id}",
    response_model=OrderView,
    tags=["orders"],
    responses=problem_responses({404: ["ORDER_NOT_FOUND"]}),
)
async def get_order(
    order_id: OrderId, svc: Handlers, principal: Annotated[Principal, Depends(service_or_admin)]
) -> OrderView:
    return await svc.get_order(principal.tenant_id, order_id)


@router.get(
    "/orders/{order_id}/events",
    response_model=Page[EventView],
    tags=["orders"],
    responses=problem_responses({404: ["ORDER_NOT_FOUND"]}),
)
async def order_events(
    order_id: OrderId,
    svc: Handlers,
    principal: Annotated[Principal, Depends(service_or_admin)],
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[EventView]:
    """The order's event stream, in version order, a page at a time."""
    recorded, last = await svc.order_events(
        principal.tenant_id, order_id, after_version=after_version(page), limit=page.limit
    )
    return stream_page(recorded, last)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderView,
    tags=["orders"],
    responses=problem_responses(
        {
            404: ["ORDER_NOT_FOUND"],
            409: ["INVALID_TRANSITION", "ORDER_CANNOT_CANCEL_AFTER_SHIPPING"],
        }
    ),
)
async def cancel_order(order_id: OrderId, svc: Handlers, caller: ServiceOrAdminCaller) -> OrderView:
    """Cancel an order and release its stock; 409 once it has shipped."""
    return await svc.cancel_order(caller, order_id)
