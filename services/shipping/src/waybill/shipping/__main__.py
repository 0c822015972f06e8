"""``python -m waybill.shipping``: serve shipping on 127.0.0.1:$WAYBILL_SHIPPING_PORT."""

from waybill.common.http.serve import serve
from waybill.shipping.app import build_app
from waybill.shipping.settings import ShippingSettings


def main() -> None:
    settings = ShippingSettings()
    serve(build_app(settings), host=settings.host, port=settings.shipping_port)


if __name__ == "__main__":
    main()
