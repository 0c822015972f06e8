"""Who is asking: the ``Caller`` of a command, built once from an authenticated request.

Every command a route runs is stamped with the caller's tenant, the request's correlation id
(``http.correlation``) and the W3C ``traceparent`` of the request's server span, so the events
it appends lead back to the request in the logs and the trace. Routes take it as a dependency::

    async def cancel_order(caller: Annotated[Caller, Depends(require_caller("admin"))]): ...

The dependency authenticates through ``require_role``, so the 401/403 answers and the OpenAPI
security scheme are those of the roles it names.
"""

# No ``from __future__ import annotations``: FastAPI must evaluate the dependency's annotation,
# which names a closure variable (``authenticated``) that a string annotation could not reach.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from waybill.common.auth import Principal, require_role
from waybill.common.eventstore.cause import Caller
from waybill.common.observability.tracing import current_traceparent


def caller_of(request: Request, principal: Principal) -> Caller:
    """The caller an authenticated ``principal`` is while ``request`` is being handled."""
    return Caller(
        tenant_id=principal.tenant_id,
        correlation_id=request.state.correlation_id,
        traceparent=current_traceparent(),
    )


def require_caller(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency returning the request's ``Caller`` if its key has one of ``roles``."""
    authenticated = require_role(*roles)

    async def request_caller(
        request: Request, principal: Annotated[Principal, Depends(authenticated)]
    ) -> Caller:
        return caller_of(request, principal)

    return request_caller
