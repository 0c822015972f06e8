"""The provider API routes (``/v1/...``): authenticate, parse, call the provider, answer.

Payments (``/v1/payment_intents``, ``/v1/refunds``) and SMS (``/v1/messages``) share the key,
the error shape, the Idempotency-Key handling and the fault layer.

Bodies are parsed by hand rather than by FastAPI so that every error keeps the provider's own
shape (``{"error": {...}}``, 400) instead of Waybill's problem+json 422.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

from waybill.sandbox import idempotency
from waybill.sandbox.errors import ProviderError, invalid_request, json_response
from waybill.sandbox.idempotency import StoredResponse
from waybill.sandbox.provider import CreateIntent, CreateRefund, PaymentProvider, parse
from waybill.sandbox.sms import SendSms, SmsProvider


async def provider(request: Request) -> PaymentProvider:
    return request.app.state.provider  # type: ignore[no-any-return]


async def require_api_key(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    expected = f"Bearer {request.app.state.settings.provider_api_key}"
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise ProviderError(
            401, "authentication_error", "api_key_invalid", "Invalid API key provided"
        )


async def sms_provider(request: Request) -> SmsProvider:
    return request.app.state.sms  # type: ignore[no-any-return]


Provider = Annotated[PaymentProvider, Depends(provider)]
Sms = Annotated[SmsProvider, Depends(sms_provider)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]

# The provider API answers errors the way Stripe does (``{"error": {...}}`` as
# application/json), not as problem+json: declared so, for every status it can answer.
_PROVIDER_ERROR: dict[str, Any] = {"content": {"application/json": {}}}
PROVIDER_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": 'Stripe-style error: `{"error": {type, code, message}}`'}
    | _PROVIDER_ERROR,
    "5XX": {"description": "Stripe-style error (or an injected fault)"} | _PROVIDER_ERROR,
}

router = APIRouter(
    prefix="/v1",
    tags=["provider"],
    dependencies=[Depends(require_api_key)],
    responses=PROVIDER_ERRORS,
)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise invalid_request("parameter_invalid", "The body is not valid JSON") from None


def _stored(response: StoredResponse) -> Response:
    return json_response(response.status_code, response.body)


@router.post("/payment_intents", summary="Create (and confirm) a payment intent")
async def create_payment_intent(
    request: Request, provider: Provider, key: IdempotencyKey = None
) -> Response:
    key = idempotency.check_key(key)
    body = parse(CreateIntent, await _json_body(request))
    return _stored(await provider.create_intent(key, body))


@router.get("/payment_intents/{intent_id}", summary="A payment intent's current state")
async def get_payment_intent(intent_id: str, provider: Provider) -> Response:
    return json_response(200, json.dumps(await provider.get_intent(intent_id)))


@router.post("/refunds", summary="Refund a succeeded payment intent (all or part)")
async def create_refund(
    request: Request, provider: Provider, key: IdempotencyKey = None
) -> Response:
    key = idempotency.check_key(key)
    body = parse(CreateRefund, await _json_body(request))
    return _stored(await provider.create_refund(key, body))


@router.post(
    "/messages",
    summary="Send an SMS (stored, listed by GET /sms)",
    status_code=201,
    responses={201: {"description": '`{"id", "to", "status": "queued", ...}`'}},
)
async def send_message(request: Request, sms: Sms, key: IdempotencyKey = None) -> Response:
    """``Idempotency-Key`` is optional here: with it, a retry returns the first answer."""
    key = None if key is None else idempotency.check_key(key)
    body = parse(SendSms, await _json_body(request))
    return _stored(await sms.send(key, body))


async def provider_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProviderError)
    return exc.to_response()
