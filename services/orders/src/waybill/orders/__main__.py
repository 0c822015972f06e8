"""``python -m waybill.orders``: serve the orders service on 127.0.0.1:$WAYBILL_ORDERS_PORT."""

import uvicorn

from waybill.orders.app import build_app
from waybill.orders.settings import OrdersSettings


def main() -> None:
    settings = OrdersSettings()
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.orders_port,
        log_config=None,  # structlog owns logging (configure_logging)
        access_log=False,
    )


if __name__ == "__main__":
    main()
