"""What the monitor reads from a service's /metrics, and how a CSV cell is written."""

from __future__ import annotations

from datetime import UTC, datetime

from waybill.monitor.export import cell
from waybill.monitor.fleet import parse_metrics

EXPOSITION = """\
# HELP waybill_outbox_backlog Outbox rows not yet published.
# TYPE waybill_outbox_backlog gauge
waybill_outbox_backlog{service="notifier"} 7.0
# HELP waybill_circuit_breaker_state Circuit breaker state per dependency.
# TYPE waybill_circuit_breaker_state gauge
waybill_circuit_breaker_state{dependency="smtp",service="notifier"} 0.0
waybill_circuit_breaker_state{dependency="sms",service="notifier"} 2.0
waybill_circuit_breaker_state{dependency="ep_1",service="notifier"} 1.0
# HELP waybill_events_appended_total Events appended.
# TYPE waybill_events_appended_total counter
waybill_events_appended_total{service="notifier",stream_type="message"} 3.0
"""


def test_backlog_and_breaker_states_are_read_from_the_exposition():
    assert parse_metrics(EXPOSITION) == {
        "outbox_backlog": 7,
        "breakers": {"smtp": "closed", "sms": "open", "ep_1": "half_open"},
    }


def test_a_service_without_the_gauges_has_no_backlog_figure_rather_than_zero():
    assert parse_metrics("") == {"outbox_backlog": None, "breakers": {}}


def test_a_csv_cell_never_starts_a_formula_and_writes_times_and_nothing_plainly():
    assert [cell(v) for v in ("=1+1", "+x", "-x", "@x", "\tx", "plain")] == [
        "'=1+1",
        "'+x",
        "'-x",
        "'@x",
        "'\tx",
        "plain",
    ]
    assert cell(None) == ""
    assert cell(-1) == -1
    assert cell(datetime(2026, 12, 2, tzinfo=UTC)) == "2026-12-02T00:00:00+00:00"
