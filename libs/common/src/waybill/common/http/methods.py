"""The ``Allow`` header of a 405: every method the path supports, not just one route's.

Starlette answers 405 from the first route whose path matches, so with ``GET`` and ``PUT``
declared as two routes on one path (the FastAPI way) a wrong method on it was told
``Allow: PUT`` only: a client (or a fuzzer checking the OpenAPI) is told less than the truth
(RFC 9110 § 15.5.6: the header lists the target resource's methods).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.routing import Match

_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods for which some route fully matches this request's path, sorted.

    Each method is tried against the app's routes through Starlette's public ``matches``
    (included routers are routes too), rather than by reading routes' method sets: FastAPI
    nests included routers in wrappers whose internals are not an API.
    """
    routes = request.app.router.routes
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def with_full_allow(request: Request, headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` of a 405 with ``Allow`` listing every method of the path."""
    methods = allowed_methods(request)
    if not methods:
        return dict(headers or {})
    return {**(headers or {}), "Allow": ", ".join(methods)}
