"""How every Waybill process serves HTTP: one policy, one place."""

from __future__ import annotations

from typing import Any

import uvicorn


def serve(app: Any, *, host: str, port: int, **options: Any) -> None:
    """Run ``app`` under uvicorn until SIGINT/SIGTERM.

    structlog owns logging (``configure_logging``), so uvicorn's own config and its access log
    are off; request metrics and traces cover what an access log would say.
    """
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, **options)
