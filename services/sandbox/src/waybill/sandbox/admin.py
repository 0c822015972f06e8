"""``/admin``, ``/ledger``, ``/mailbox`` and ``/sms``: read what happened, turn the fault knobs
(no key: loopback only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.sandbox.fault_layer import RequestLog
from waybill.sandbox.faults import FaultKnobs, Faults, FaultsUpdate
from waybill.sandbox.ledger import read_ledger, webhook_history
from waybill.sandbox.mailbox import Mailbox
from waybill.sandbox.sms import SmsProvider

router = APIRouter(tags=["sandbox admin"])


def _engine(request: Request) -> AsyncEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


def _knobs(request: Request) -> FaultKnobs:
    return request.app.state.knobs  # type: ignore[no-any-return]


@router.get("/ledger", summary="Charges and refunds, optionally for one metadata key/value")
async def ledger(
    request: Request,
    metadata_key: Annotated[str | None, Query(max_length=200)] = None,
    metadata_value: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, list[dict[str, Any]]]:
    return await read_ledger(_engine(request), metadata_key, metadata_value)


@router.get("/admin/requests", summary="Provider API calls received, newest last")
async def requests(
    request: Request,
    idempotency_key: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=20_000)] = 100,
) -> list[dict[str, Any]]:
    log: RequestLog = request.app.state.requests
    return log.query(idempotency_key, limit)


@router.get("/admin/webhooks", summary="Webhook events with every delivery attempt")
async def webhooks(
    request: Request,
    payment_intent: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
) -> dict[str, list[dict[str, Any]]]:
    return {"events": await webhook_history(_engine(request), payment_intent, limit)}


@router.get("/admin/faults", summary="The current fault knobs")
async def get_faults(request: Request) -> Faults:
    return _knobs(request).current


@router.put("/admin/faults", summary="Change any subset of the fault knobs")
async def put_faults(request: Request, change: FaultsUpdate) -> Faults:
    return _knobs(request).update(change)


@router.post("/admin/faults/reset", summary="Put the knobs back to the settings")
async def reset_faults(request: Request) -> Faults:
    return _knobs(request).reset()


@router.get("/mailbox", summary="Messages the SMTP server accepted, newest last, parsed")
async def list_mailbox(
    request: Request,
    to: Annotated[str | None, Query(max_length=320)] = None,
    message_id: Annotated[str | None, Query(max_length=998)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, list[dict[str, Any]]]:
    mailbox: Mailbox = request.app.state.mailbox
    return {"items": await mailbox.list(to, message_id, limit)}


@router.delete("/mailbox", summary="Empty the mailbox")
async def clear_mailbox(request: Request) -> dict[str, int]:
    mailbox: Mailbox = request.app.state.mailbox
    return {"deleted": await mailbox.clear()}


@router.get("/sms", summary="Text messages the SMS provider sent, newest last")
async def list_sms(
    request: Request,
    to: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, list[dict[str, Any]]]:
    sms: SmsProvider = request.app.state.sms
    return {"items": await sms.list(to, limit)}
