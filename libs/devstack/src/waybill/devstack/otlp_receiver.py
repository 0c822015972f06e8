"""An OTLP/HTTP trace receiver a test controls: what the services export, kept in memory.

The services' exporter (``WAYBILL_OTEL_EXPORTER_OTLP_ENDPOINT``) posts protobuf
``ExportTraceServiceRequest`` bodies to ``POST /v1/traces``; the receiver parses them with
``opentelemetry-proto`` (the exporter's own dependency), keeps each span's service, ids, parent
and name, and answers 200 with an empty ``ExportTraceServiceResponse``, as a collector does.
A real HTTP server on 127.0.0.1 (a thread of the test process): the export is tested end to
end, nothing in the services is swapped for the test.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_id: str | None
    name: str
    links: tuple[str, ...] = ()  # the trace ids of the spans it links to


def spans_of(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Every span of one export request."""
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        service = next(
            (
                attribute.value.string_value
                for attribute in resource_spans.resource.attributes
                if attribute.key == "service.name"
            ),
            "",
        )
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        links=tuple(link.trace_id.hex() for link in span.links),
                    )
                )
    return spans


class OtlpReceiver:
    """``url`` is the endpoint to give the exporter; ``spans()`` what arrived so far."""

    def __init__(self, port: int = 0) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def keep(self, request: ExportTraceServiceRequest) -> None:
        spans = spans_of(request)
        with self._lock:
            self.requests += 1
            self._spans.extend(spans)

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        """What arrived so far (of one trace, if given)."""
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != TRACES_PATH:
                self._answer(404, b"", "text/plain")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                request = ExportTraceServiceRequest.FromString(self._decoded(body))
            except Exception as exc:  # anything unparsable is the exporter's bug: say so
                self._answer(400, str(exc).encode(), "text/plain")
                return
            receiver.keep(request)
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)

        def _decoded(self, body: bytes) -> bytes:
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                return gzip.decompress(body)
            if encoding == "deflate":
                return zlib.decompress(body)
            return body

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: one line per export would drown the test's output."""

    return Handler


@contextmanager
def otlp_receiver(port: int = 0) -> Iterator[OtlpReceiver]:
    """A running receiver on 127.0.0.1 (a free port unless given), stopped on exit."""
    receiver = OtlpReceiver(port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
