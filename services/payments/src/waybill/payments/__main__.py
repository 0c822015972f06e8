"""``python -m waybill.payments``: serve payments on 127.0.0.1:$WAYBILL_PAYMENTS_PORT."""

import uvicorn

from waybill.payments.app import build_app
from waybill.payments.settings import PaymentsSettings


def main() -> None:
    settings = PaymentsSettings()
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.payments_port,
        log_config=None,  # structlog owns logging (configure_logging)
        access_log=False,
    )


if __name__ == "__main__":
    main()
