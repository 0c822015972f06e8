"""``python -m waybill.monitor``: serve the monitor on 127.0.0.1:$WAYBILL_MONITOR_PORT."""

from waybill.common.http.serve import serve
from waybill.monitor.app import build_app
from waybill.monitor.settings import MonitorSettings


def main() -> None:
    settings = MonitorSettings()
    serve(build_app(settings), host=settings.host, port=settings.monitor_port)


if __name__ == "__main__":
    main()
