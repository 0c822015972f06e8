"""``python -m waybill.sandbox``: serve the sandbox on 127.0.0.1:$WAYBILL_SANDBOX_PORT."""

from waybill.common.http.serve import serve
from waybill.sandbox.app import build_asgi
from waybill.sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    serve(
        build_asgi(settings),
        host=settings.host,
        port=settings.sandbox_port,
        # A "timeout" fault holds answers for a minute; shutdown should not wait for them.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
