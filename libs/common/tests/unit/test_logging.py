"""Logs are JSON lines carrying the bound context, from structlog and stdlib loggers alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from waybill.common.observability.logging import bind, bound, configure_logging
from waybill.common.observability.tracing import context_from_traceparent, current_traceparent
from waybill.common.settings import WaybillSettings


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    stream = io.StringIO()
    configure_logging("orders", WaybillSettings(log_json=True, log_level="DEBUG"), stream=stream)
    try:
        yield stream
    finally:
        root.handlers, root.level = saved[0], saved[1]
        structlog.configure(**saved[2])
        structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_bound_context_appears_on_structlog_and_stdlib_lines(log_stream: io.StringIO) -> None:
    with bound(correlation_id="corr-1", tenant_id="t-1"):
        structlog.get_logger("test").info("order_place_succeeded", order_id="o-1")
        logging.getLogger("some.library").warning("plain %s message", "stdlib")
    first, second = _lines(log_stream)
    assert first["event"] == "order_place_succeeded"
    assert first["order_id"] == "o-1"
    assert second["event"] == "plain stdlib message"
    for line in (first, second):
        assert line["correlation_id"] == "corr-1"
        assert line["tenant_id"] == "t-1"
        assert line["service"] == "orders"
        assert "timestamp" in line and "level" in line


def test_bound_values_are_gone_after_the_block_and_bind_persists(log_stream: io.StringIO) -> None:
    with bound(correlation_id="corr-2"):
        pass
    bind(event_id="e-1")
    structlog.get_logger().info("event_handle_started")
    (line,) = _lines(log_stream)
    assert "correlation_id" not in line
    assert line["event_id"] == "e-1"


def test_exceptions_are_logged_as_tracebacks_without_local_variables(
    log_stream: io.StringIO,
) -> None:
    authorization = "Bearer wb_live_secret-key-material"
    try:
        raise ValueError(f"broken after {len(authorization)} chars")
    except ValueError:
        structlog.get_logger().exception("payment_capture_failed")
    (line,) = _lines(log_stream)
    assert line["level"] == "error"
    assert "ValueError" in json.dumps(line["exception"])
    assert "secret-key-material" not in log_stream.getvalue()  # locals would leak keys


def test_a_traceparent_carries_the_trace_to_the_consumer_side() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("produce") as span:
        traceparent = current_traceparent()
    assert traceparent is not None
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert traceparent.split("-")[1] == trace_id
    with tracer.start_as_current_span("consume", context=context_from_traceparent(traceparent)):
        consumed = trace.get_current_span().get_span_context()
    assert format(consumed.trace_id, "032x") == trace_id
    assert current_traceparent() is None  # outside any span
