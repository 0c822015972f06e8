"""``python -m waybill.notifier``: serve the notifier on 127.0.0.1:$WAYBILL_NOTIFIER_PORT."""

from waybill.common.http.serve import serve
from waybill.notifier.app import build_app
from waybill.notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    serve(build_app(settings), host=settings.host, port=settings.notifier_port)


if __name__ == "__main__":
    main()
