"""The FastAPI app factory every Waybill service uses.

``create_app`` gives each service the same edge: problem+json errors, body limits,
correlation ids, request metrics, tracing, health, ``/metrics`` and ``/asyncapi.json``.
A service only brings its routers, its readiness checks and its lifespan.

Middleware order, outermost first (each wraps the next)::

    CorrelationId -> RequestMetrics -> Problem (catch-all) -> BodyLimit -> FastAPI routing

so the 413/422 answers of the body limit and the 500s of the catch-all are still counted in
the metrics and still carry the correlation id header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from waybill.common.auth.api import keys_router
from waybill.common.auth.store import KeyStore
from waybill.common.http.correlation import CorrelationIdMiddleware
from waybill.common.http.errors import ErrorStatus, ProblemMiddleware, install_problem_handlers
from waybill.common.http.health import health_router
from waybill.common.http.limits import MAX_BODY_BYTES, BodyLimitMiddleware
from waybill.common.http.openapi import declare_kit_responses
from waybill.common.http.problems import PROBLEM_CONTENT_TYPE
from waybill.common.http.request_metrics import RequestMetricsMiddleware
from waybill.common.lifecycle import Role
from waybill.common.observability.metrics import render_latest
from waybill.common.observability.tracing import configure_tracing
from waybill.common.settings import WaybillSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def _problem_responses() -> dict[int | str, dict[str, Any]]:
    problem: dict[str, Any] = {"content": {PROBLEM_CONTENT_TYPE: {}}}
    return {
        "4XX": {"description": "Client error (RFC 9457 problem+json)", **problem},
        "5XX": {"description": "Server error (RFC 9457 problem+json)", **problem},
    }


def _minimal_asyncapi(service: str, version: str) -> dict[str, Any]:
    return {
        "asyncapi": "2.6.0",
        "info": {"title": f"waybill-{service}", "version": version},
        "channels": {},
    }


def _kit_lifespan(
    key_store: KeyStore | None,
    service_lifespan: Lifespan | None,
    health_checks: Mapping[str, Callable[[], Awaitable[None]]],
) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if key_store is not None:
            await key_store.start()
        try:
            if service_lifespan is None:
                yield
            else:
                async with service_lifespan(app):
                    yield
        finally:
            if key_store is not None:
                await key_store.close()
            # Checks that hold a connection (BrokerCheck) are closed with the app.
            for check in health_checks.values():
                close = getattr(check, "close", None)
                if close is not None:
                    await close()

    return lifespan


def create_app(
    *,
    service: str,
    settings: WaybillSettings,
    routers: Sequence[APIRouter],
    health_checks: Mapping[str, Callable[[], Awaitable[None]]],
    lifespan: Lifespan | None = None,
    asyncapi: Callable[[], dict[str, Any]] | None = None,
    version: str = "0.1.0",
    key_store: KeyStore | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    error_status: ErrorStatus | None = None,
    key_routes: bool = True,
) -> FastAPI:
    """Build a service's FastAPI app.

    ``key_store``: the :class:`KeyStore` that ``require_role`` dependencies use. It is put on
    ``app.state.key_store`` and started/closed with the app (around ``lifespan``). A service
    that builds its store inside its own lifespan may instead set ``app.state.key_store``
    there and pass nothing here.

    ``key_routes``: mount ``GET /auth/keys`` and ``POST /auth/keys/{id}/revoke`` (every
    Waybill service has them; the sandbox, which has no API keys, turns them off).

    ``health_checks`` that have an async ``close()`` (like ``broker_check``) are closed when
    the app shuts down.

    ``error_status``: the service's table from domain error code to HTTP status (its api's
    ``ERROR_STATUS``), the one place its codes meet HTTP (``http.errors``).
    """
    app = FastAPI(
        title=f"waybill-{service}",
        version=version,
        lifespan=_kit_lifespan(key_store, lifespan, health_checks),
        responses=_problem_responses(),
    )
    app.state.service = service
    app.state.settings = settings
    if key_store is not None:
        app.state.key_store = key_store
    error_status = dict(error_status or {})
    install_problem_handlers(app, error_status)

    # add_middleware prepends: the last added is the outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(ProblemMiddleware, error_status=error_status)
    app.add_middleware(RequestMetricsMiddleware, service=service)
    app.add_middleware(CorrelationIdMiddleware)

    app.include_router(health_router(health_checks))
    app.include_router(_operations_router(service, version, asyncapi))
    if key_routes:
        app.include_router(keys_router())
    # A process without the api role (WAYBILL_ROLES) serves only health, metrics and the
    # documents: its probes and scrapes still work, its business routes are elsewhere.
    if Role.API in settings.run_roles:
        for router in routers:
            app.include_router(router)
    configure_tracing(app, service, settings)
    declare_kit_responses(app)
    return app


def _operations_router(
    service: str, version: str, asyncapi: Callable[[], dict[str, Any]] | None
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    @router.get("/asyncapi.json", summary="Topics and event types published and consumed")
    async def asyncapi_document() -> dict[str, Any]:
        return asyncapi() if asyncapi is not None else _minimal_asyncapi(service, version)

    return router
