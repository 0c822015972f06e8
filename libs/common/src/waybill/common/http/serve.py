"""How every Waybill process serves HTTP: one policy, one place."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)


def serve(app: Any, *, host: str, port: int, **options: Any) -> None:
    """Run ``app`` under uvicorn until SIGINT/SIGTERM; with the single argument ``migrate``
    (``waybill-service migrate``, a Kubernetes migration Job), migrate its database and exit.

    structlog owns logging (``configure_logging``), so uvicorn's own config and its access log
    are off; request metrics and traces cover what an access log would say.
    """
    if sys.argv[1:] == ["migrate"]:
        migrate = getattr(getattr(app, "state", None), "migrate", None)
        if migrate is None:
            raise SystemExit("this process has no database migrations to run")
        asyncio.run(migrate())
        log.info("service_migrate_completed")
        return
    if sys.argv[1:]:
        raise SystemExit(f"unknown arguments {sys.argv[1:]}: the only command is `migrate`")
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, **options)
