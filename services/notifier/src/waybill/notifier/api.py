"""HTTP routes of the notifier (CONTRACT.md § notifier). Thin: parse, authorise, call, map.

Webhook endpoints belong to a tenant's backend: the ``service`` role manages them (an admin may
too); another tenant's endpoint is 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from waybill.common.eventstore import Caller
from waybill.common.http.caller import require_caller
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.openapi import problem_responses
from waybill.common.http.outbound import UnsafeTarget
from waybill.common.http.pagination import Page, PageParams, page_params
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.notifier.domain import errors
from waybill.notifier.handlers import NotifierHandlers
from waybill.notifier.schemas import EndpointIn, EndpointPatch, RecoverIn
from waybill.notifier.views import DeliveryView, EndpointView, EndpointWithSecretView

router = APIRouter(tags=["webhook endpoints"])
EndpointId = Annotated[str, Path(pattern=r"^ep_[0-9a-f]{32}$")]
Backend = Annotated[Caller, Depends(require_caller("service", "admin"))]
NOT_FOUND = problem_responses({404: ["WEBHOOK_ENDPOINT_NOT_FOUND"]})

# The one place the notifier's error codes meet HTTP (STYLE.md #14), handed to create_app.
ERROR_STATUS: ErrorStatus = {
    errors.NotifierError.code: 409,
    errors.EndpointNotFound.code: 404,
    errors.DeliveryNotFound.code: 404,
    errors.DeliveryPending.code: 409,
    UnsafeTarget.code: 422,  # the SSRF check (waybill.common.http.outbound)
}


async def handlers(request: Request) -> NotifierHandlers:
    return request.app.state.handlers  # type: ignore[no-any-return]


Handlers = Annotated[NotifierHandlers, Depends(handlers)]


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=EndpointWithSecretView,
    responses=problem_responses({422: ["UNSAFE_WEBHOOK_URL"]}),
)
async def create_endpoint(
    body: EndpointIn, svc: Handlers, caller: Backend
) -> EndpointWithSecretView:
    """Subscribe a URL to event types; the response carries its signing secret."""
    return await svc.create_endpoint(caller, body.model_dump())


@router.get("/webhook-endpoints", response_model=Page[EndpointView])
async def list_endpoints(
    svc: Handlers, caller: Backend, page: Annotated[PageParams, Depends(page_params)]
) -> Page[EndpointView]:
    items, last = await svc.list_endpoints(
        caller.tenant_id, limit=page.limit, after=position_from_cursor(page.after)
    )
    return Page[EndpointView](items=items, next_cursor=next_cursor(last))


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointView, responses=NOT_FOUND)
async def get_endpoint(endpoint_id: EndpointId, svc: Handlers, caller: Backend) -> EndpointView:
    return await svc.get_endpoint(caller.tenant_id, endpoint_id)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointView,
    responses=problem_responses({404: ["WEBHOOK_ENDPOINT_NOT_FOUND"], 422: ["UNSAFE_WEBHOOK_URL"]}),
)
async def update_endpoint(
    endpoint_id: EndpointId, body: EndpointPatch, svc: Handlers, caller: Backend
) -> EndpointView:
    """Change an endpoint; fields left out stay as they are (``status`` re-enables one)."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    for required in ("url", "event_types", "headers", "status"):
        if changes.get(required, "") is None:
            changes.pop(required)  # not nullable: null means "leave it"
    return await svc.update_endpoint(caller, endpoint_id, changes)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_endpoint(endpoint_id: EndpointId, svc: Handlers, caller: Backend) -> Response:
    await svc.delete_endpoint(caller, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecretView,
    responses=NOT_FOUND,
)
async def rotate_secret(
    endpoint_id: EndpointId, svc: Handlers, caller: Backend
) -> EndpointWithSecretView:
    """A new signing secret; the previous one stays valid for WAYBILL_NOTIFIER_SECRET_GRACE_S
    (default 24 h), and deliveries in that window carry both signatures."""
    return await svc.rotate_secret(caller, endpoint_id)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=Page[DeliveryView],
    responses=NOT_FOUND,
)
async def deliveries(
    endpoint_id: EndpointId,
    svc: Handlers,
    caller: Backend,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[DeliveryView]:
    """The messages owed to this endpoint, newest first, with every attempt."""
    items, last = await svc.deliveries(
        caller.tenant_id, endpoint_id, limit=page.limit, after=position_from_cursor(page.after)
    )
    return Page[DeliveryView](items=items, next_cursor=next_cursor(last))


@router.post(
    "/deliveries/{message_id}/replay",
    response_model=DeliveryView,
    responses=problem_responses({404: ["DELIVERY_NOT_FOUND"], 409: ["DELIVERY_PENDING"]}),
)
async def replay(
    message_id: Annotated[str, Path(pattern=r"^msg_[0-9a-f]{32}$")], svc: Handlers, caller: Backend
) -> DeliveryView:
    """Send a message again, with the same ``webhook-id`` (a receiver that saw it already can
    tell), on a fresh schedule of attempts."""
    return await svc.replay(caller, message_id)


@router.post(
    "/webhook-endpoints/{endpoint_id}/recover", response_model=dict[str, int], responses=NOT_FOUND
)
async def recover(
    endpoint_id: EndpointId, body: RecoverIn, svc: Handlers, caller: Backend
) -> dict[str, int]:
    """Send again every failed message of the endpoint created in [``since``, ``until``);
    ``dry_run`` only counts them. Answers ``{"count"}``."""
    count = await svc.recover(
        caller, endpoint_id, since=body.since, until=body.until, dry_run=body.dry_run
    )
    return {"count": count}
