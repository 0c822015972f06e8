"""HTTP routes of the payments service (CONTRACT.md § payments). Thin: parse, authorise, call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import ValidationError

from waybill.common.auth import Principal, require_role
from waybill.common.eventstore import Caller
from waybill.common.http.caller import require_caller
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.openapi import problem_responses
from waybill.common.http.pagination import (
    Page,
    PageParams,
    page_params,
)
from waybill.common.http.problems import ProblemError
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.payments import signature
from waybill.payments.domain import errors
from waybill.payments.gateway import ProviderGateway
from waybill.payments.handlers import PaymentHandlers
from waybill.payments.refunds import refund_payment
from waybill.payments.schemas import RefundIn
from waybill.payments.views import PaymentView, SyncResult
from waybill.payments.webhooks import ProviderEvent, apply_webhook
from waybill.payments.workers.charger import Charger
from waybill.payments.workers.sync import PaymentSyncJob

router = APIRouter()
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{32}$")]
service_or_admin = require_role("service", "admin")
admin_only = require_role("admin")
AdminCaller = Annotated[Caller, Depends(require_caller("admin"))]

# The one place payments' error codes meet HTTP (STYLE.md #14), handed to create_app.
ERROR_STATUS: ErrorStatus = {
    errors.PaymentsError.code: 409,
    errors.InvalidTransition.code: 409,
    errors.RefundExceedsCaptured.code: 422,
    errors.PaymentNotFound.code: 404,
    errors.ProviderUnreachable.code: 503,
    errors.RefundRefusedByProvider.code: 409,
    signature.SignatureError.code: 400,
    signature.TimestampOutOfTolerance.code: 400,
}


@dataclass(frozen=True)
class Services:
    """What the routes call, wired once by ``app.build_app``."""

    handlers: PaymentHandlers
    gateway: ProviderGateway
    charger: Charger
    sync: PaymentSyncJob
    webhook_secret: str
    webhook_tolerance_s: float


async def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


Svc = Annotated[Services, Depends(services)]


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentView,
    tags=["payments"],
    responses=problem_responses({404: ["PAYMENT_NOT_FOUND"]}),
)
async def get_payment(
    payment_id: PaymentId, svc: Svc, principal: Annotated[Principal, Depends(service_or_admin)]
) -> PaymentView:
    return await svc.handlers.get_payment(principal.tenant_id, payment_id)


@router.get("/payments", response_model=Page[PaymentView], tags=["payments"])
async def list_payments(
    svc: Svc,
    principal: Annotated[Principal, Depends(service_or_admin)],
    page: Annotated[PageParams, Depends(page_params)],
    order_id: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[PaymentView]:
    """Newest first; ``order_id`` narrows to that order's payment."""
    items, last = await svc.handlers.list_payments(
        principal.tenant_id,
        order_id=order_id,
        limit=page.limit,
        after=position_from_cursor(page.after),
    )
    return Page[PaymentView](items=items, next_cursor=next_cursor(last))


@router.post(
    "/payments/{payment_id}/refund",
    response_model=PaymentView,
    tags=["payments"],
    responses=problem_responses(
        {
            404: ["PAYMENT_NOT_FOUND"],
            409: ["INVALID_TRANSITION", "PROVIDER_REJECTED"],
            422: ["REFUND_EXCEEDS_CAPTURED"],
            503: ["PROVIDER_UNAVAILABLE"],
        }
    ),
)
async def refund(
    payment_id: PaymentId,
    svc: Svc,
    caller: AdminCaller,
    body: Annotated[RefundIn | None, Body()] = None,
) -> PaymentView:
    """Refund a captured payment (all that is left by default); 409 if nothing is captured."""
    body = body or RefundIn()
    return await refund_payment(
        svc.handlers,
        svc.gateway,
        caller,
        payment_id,
        amount_cents=body.amount_cents,
        reason=body.reason,
        on_provider_work=svc.charger.submit,
    )


async def admin_tenant(principal: Annotated[Principal, Depends(admin_only)]) -> str:
    """Who may read ``GET /admin/queues`` (mounted from the kit in ``app``): a tenant's
    admins, who see their own jobs."""
    return principal.tenant_id


@router.post("/admin/payments/sync", response_model=SyncResult, tags=["admin"])
async def sync_now(
    svc: Svc,
    principal: Annotated[Principal, Depends(admin_only)],
    older_than_s: Annotated[float | None, Query(ge=0, le=86_400 * 365)] = None,
) -> SyncResult:
    """Ask the provider now about every processing payment of the caller's tenant (only those
    processing longer than ``older_than_s`` seconds, if given): ``processed`` payments
    examined, ``succeeded`` settled as captured, ``failed`` settled as failed."""
    return await svc.sync.run_now(tenant_id=principal.tenant_id, older_than_s=older_than_s or 0.0)


@router.post(
    "/webhooks/provider",
    tags=["webhooks"],
    responses=problem_responses(
        {400: ["INVALID_SIGNATURE", "TIMESTAMP_OUT_OF_TOLERANCE", "INVALID_PAYLOAD"]}
    ),
)
async def provider_webhook(request: Request, svc: Svc) -> dict[str, str]:
    """The provider's signed callbacks (no API key: the signature authenticates them)."""
    body = await request.body()
    signature.verify(
        request.headers.get("Provider-Signature"),
        body,
        svc.webhook_secret,
        tolerance_s=svc.webhook_tolerance_s,
    )
    try:
        event = ProviderEvent.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ProblemError(
            400, "INVALID_PAYLOAD", "Invalid webhook payload", "Not a provider event."
        ) from exc
    outcome = await apply_webhook(
        svc.handlers,
        event,
        correlation_id=request.state.correlation_id,
        on_provider_work=svc.charger.submit,
    )
    return {"status": outcome.value}
