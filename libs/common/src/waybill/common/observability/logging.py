"""Structured logging for every Waybill process (structlog, stdlib routed through it).

Pretty console output on a TTY, one JSON object per line otherwise (or when
``settings.log_json`` says so). Values bound with :func:`bind` (or by the HTTP kit and the
consumer runtime: correlation id, tenant id, event id) appear on every line logged in the
same request or message context, including lines from libraries using stdlib logging.
Event names follow ``domain_action_status`` (``payment_capture_failed``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import Processor

from waybill.common.settings import WaybillSettings

# Loggers that install their own handlers; we route them through the root handler instead.
_REROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "faststream")


def _add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Put the current trace/span ids on the line, so logs and traces join up."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def configure_logging(
    service: str, settings: WaybillSettings, *, stream: TextIO | None = None
) -> None:
    """Configure structlog and stdlib logging once per process (safe to call again)."""
    stream = stream or sys.stderr
    as_json = settings.log_json if settings.log_json is not None else not stream.isatty()
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)

    def add_service(
        _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
        _add_trace_ids,
        structlog.processors.StackInfoRenderer(),
    ]
    # Tracebacks never show local variables: locals include request headers, so an API key
    # (or a customer's data) would end up in the logs.
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
        )

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in _REROUTED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def bind(**values: Any) -> None:
    """Bind values to every log line of the current context (request, message, task)."""
    structlog.contextvars.bind_contextvars(**values)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind values for the duration of a block, restoring the previous ones afterwards."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
