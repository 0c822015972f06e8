"""``python -m waybill.orders``: serve the orders service on 127.0.0.1:$WAYBILL_ORDERS_PORT."""

from waybill.common.http.serve import serve
from waybill.orders.app import build_app
from waybill.orders.settings import OrdersSettings


def main() -> None:
    settings = OrdersSettings()
    serve(
        build_app(settings),
        host=settings.host,
        port=settings.orders_port,
    )


if __name__ == "__main__":
    main()
