"""``python -m waybill.sandbox``: serve the sandbox on 127.0.0.1:$WAYBILL_SANDBOX_PORT."""

import uvicorn

from waybill.sandbox.app import build_asgi
from waybill.sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    uvicorn.run(
        build_asgi(settings),
        host=settings.host,
        port=settings.sandbox_port,
        log_config=None,  # structlog owns logging (configure_logging)
        access_log=False,
        # A "timeout" fault holds answers for a minute; shutdown should not wait for them.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
