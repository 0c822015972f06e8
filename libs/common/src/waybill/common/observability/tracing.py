"""OpenTelemetry tracing: FastAPI spans, and W3C ``traceparent`` for Kafka headers and jobs.

Spans are always created (so a ``traceparent`` is available to put on every event and one
trace spans the whole saga); they are exported only when
``settings.otel_exporter_otlp_endpoint`` is set (OTLP over HTTP, batched; the standard
``OTEL_BSP_*`` variables tune the batching). Without an endpoint the SDK runs with no
exporter: ids are generated, nothing leaves the process.

How one trace follows the saga (a tree, not a list of siblings):

- an HTTP request's server span continues the client's ``traceparent``;
- an event is stamped with the span that appended it (``EventStore.append``): the request's
  span, the consumer's ``<type> process`` span, a worker's ``<queue> run`` span;
- the consumer's span is a child of the producer's (the ``traceparent`` header), a job's run
  is a child of the span that enqueued it (``Job.traceparent``, stored with the job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from waybill.common.settings import WaybillSettings

_propagator = TraceContextTextMapPropagator()
# A proxy until the process installs its provider (``configure_tracing``), then that one's.
_tracer = trace.get_tracer("waybill")
# Probes and scrapes are frequent and uninteresting; do not trace them.
_EXCLUDED_URLS = "health/live,health/ready,metrics"


def _provider(service: str, settings: WaybillSettings) -> TracerProvider:
    """The process-wide SDK provider (OpenTelemetry allows setting the global only once)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": f"waybill-{service}"}))
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    return provider


def configure_tracing(app: FastAPI, service: str, settings: WaybillSettings) -> TracerProvider:
    """Install the SDK provider (once per process) and instrument ``app``."""
    provider = _provider(service, settings)
    # One server span per request; the ASGI "receive"/"send" child spans (two or more per
    # request) say nothing the server span does not, and cost CPU on every request.
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=_EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )
    return provider


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to put on an outgoing Kafka record."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context:
    """The context to start a consumer span in, continuing the producer's trace if given
    (``tracer.start_as_current_span(name, context=...)``)."""
    if not traceparent:
        return Context()
    return _propagator.extract({"traceparent": traceparent})


def messaging_span(
    name: str,
    traceparent: str | None,
    attributes: Mapping[str, AttributeValue],
    *,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span]:
    """A consumer-kind span named ``name`` (``<topic or type> process``, ``<queue> run``),
    current in the block, continuing the trace of ``traceparent`` (a new trace if None)."""
    return _tracer.start_as_current_span(
        name,
        context=context_from_traceparent(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    )


def consumer_span(record: Any, group: str) -> AbstractContextManager[Span]:
    """The ``<topic> process`` span of one consumed Kafka record (OTel messaging conventions),
    continuing its producer's trace (the ``traceparent`` header)."""
    headers = {name: bytes(value).decode(errors="replace") for name, value in record.headers or ()}
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": group,
    }
    if "ce_id" in headers:
        attributes["messaging.message.id"] = headers["ce_id"]
    if "ce_type" in headers:
        attributes["cloudevents.event_type"] = headers["ce_type"]
    return messaging_span(f"{record.topic} process", headers.get("traceparent"), attributes)


def current_link() -> list[Link]:
    """A link to the current span (if any): how a span started in another trace says what
    it was started from (a provider webhook's request, a periodic run)."""
    context = trace.get_current_span().get_span_context()
    return [Link(context)] if context.is_valid else []
