"""FastAPI dependencies that authenticate ``Authorization: Bearer <key>`` and check roles.

The :class:`~waybill.common.auth.store.KeyStore` is read from ``app.state.key_store``. Pass
one to :func:`waybill.common.http.app.create_app` (``key_store=``): the kit then starts and
closes it with the app. Missing/unknown/revoked key -> 401 ``UNAUTHENTICATED``; a role not in
the allowed set -> 403 ``FORBIDDEN``; auth database unreachable -> 503 ``AUTH_UNAVAILABLE``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from waybill.common.auth.keys import ROLES
from waybill.common.auth.store import KeyStore, Principal
from waybill.common.http.problems import ProblemError
from waybill.common.http.unavailable import database_unavailable

_bearer = HTTPBearer(
    auto_error=False, description="An API key: `Authorization: Bearer wb_live_...`"
)


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "UNAUTHENTICATED",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="waybill"'},
    )


def key_store_of(request: Request) -> KeyStore:
    store = getattr(request.app.state, "key_store", None)
    if not isinstance(store, KeyStore):
        raise RuntimeError("app.state.key_store is not set: pass key_store= to create_app")
    return store


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the caller's :class:`Principal` if its role is one of ``roles``
    (no roles: any authenticated key)."""
    allowed = frozenset(roles)
    if unknown := allowed - ROLES:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def authenticated_principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthenticated("An API key is required: Authorization: Bearer <key>.")
        try:
            principal = await key_store_of(request).authenticate(credentials.credentials)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            raise ProblemError(
                503,
                "AUTH_UNAVAILABLE",
                "Authentication unavailable",
                "API keys cannot be checked right now; retry shortly.",
                headers={"Retry-After": "1"},
            ) from exc
        if principal is None:
            raise _unauthenticated("The API key is unknown or revoked.")
        if allowed and principal.role not in allowed:
            raise ProblemError(
                403,
                "FORBIDDEN",
                "Forbidden",
                f"This operation needs role {' or '.join(sorted(allowed))}.",
            )
        request.state.principal = principal
        structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
        return principal

    return authenticated_principal
