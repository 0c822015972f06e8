"""``python -m waybill.payments``: serve payments on 127.0.0.1:$WAYBILL_PAYMENTS_PORT."""

from waybill.common.http.serve import serve
from waybill.payments.app import build_app
from waybill.payments.settings import PaymentsSettings


def main() -> None:
    settings = PaymentsSettings()
    serve(
        build_app(settings),
        host=settings.host,
        port=settings.payments_port,
    )


if __name__ == "__main__":
    main()
