"""``GET /auth/keys`` and ``POST /auth/keys/{id}/revoke``: a tenant's admins manage its keys.

Mounted by the HTTP kit on every service (CONTRACT.md § every service), so a leaked key can be
revoked wherever the operator happens to be; the revocation reaches every other service through
the shared auth database within the key cache's TTL. A key of another tenant is a 404, exactly
like an unknown one (tenant isolation: its existence is not revealed).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from waybill.common.auth.dependencies import key_store_of, require_role
from waybill.common.auth.keys import KeyPosition, KeyRecord
from waybill.common.auth.store import Principal
from waybill.common.http.openapi import problem_responses
from waybill.common.http.pagination import Page, PageParams, encode_cursor, page_params
from waybill.common.http.problems import ProblemError


class ApiKeyView(BaseModel):
    """A key as its tenant's admins see it: never the key itself nor its hash."""

    id: str
    prefix: str
    role: str
    agent_id: str | None
    created_at: datetime
    last_used_at: datetime | None  # updated at most once a minute
    revoked: bool
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: KeyRecord) -> ApiKeyView:
        return cls(
            id=record.key_id,
            prefix=record.prefix,
            role=record.role,
            agent_id=record.agent_id,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked=record.revoked_at is not None,
            revoked_at=record.revoked_at,
        )


admin_only = require_role("admin")
KeyId = Annotated[uuid.UUID, Path(description="The key's id (as `waybill keys list` shows)")]

_NOT_FOUND = problem_responses({404: ["API_KEY_NOT_FOUND"]})


def _position(after: dict[str, Any] | None) -> KeyPosition | None:
    if after is None:
        return None
    try:
        return datetime.fromisoformat(str(after["c"])), uuid.UUID(str(after["id"]))
    except (KeyError, ValueError) as exc:
        raise ProblemError(
            422, "INVALID_CURSOR", "Invalid cursor", "The cursor is not one this list returned."
        ) from exc


def keys_router() -> APIRouter:
    router = APIRouter(prefix="/auth", tags=["auth"])

    @router.get("/keys", response_model=Page[ApiKeyView])
    async def list_keys(
        request: Request,
        principal: Annotated[Principal, Depends(admin_only)],
        page: Annotated[PageParams, Depends(page_params)],
    ) -> Page[ApiKeyView]:
        """The caller's tenant's API keys, newest first, revoked ones included (admin)."""
        records, last = await key_store_of(request).keys_of(
            principal.tenant_id, limit=page.limit, after=_position(page.after)
        )
        next_cursor = None
        if last is not None:
            next_cursor = encode_cursor({"c": last[0].isoformat(), "id": str(last[1])})
        return Page[ApiKeyView](items=[ApiKeyView.of(r) for r in records], next_cursor=next_cursor)

    @router.post("/keys/{key_id}/revoke", response_model=ApiKeyView, responses=_NOT_FOUND)
    async def revoke_key(
        key_id: KeyId, request: Request, principal: Annotated[Principal, Depends(admin_only)]
    ) -> ApiKeyView:
        """Revoke one of the tenant's keys (admin). Every service refuses it within seconds;
        revoking a revoked key answers the key again, unchanged."""
        record = await key_store_of(request).revoke(principal.tenant_id, str(key_id))
        if record is None:
            raise ProblemError(
                404, "API_KEY_NOT_FOUND", "API key not found", "No key of your tenant has this id."
            )
        return ApiKeyView.of(record)

    return router
