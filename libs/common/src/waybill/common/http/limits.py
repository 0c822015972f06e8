"""Request body limits, enforced while the body is read, before any handler runs.

A pure-ASGI middleware (not ``BaseHTTPMiddleware``, which buffers whole bodies first):

* ``Content-Length`` over the limit -> 413 at once, without reading a byte of the body;
* otherwise the body is read chunk by chunk and 413 is sent as soon as the running total
  passes the limit, so a chunked 2 GiB upload costs us at most ~1 MiB of memory;
* a JSON body that is not UTF-8, not JSON, or nested deeper than :data:`MAX_JSON_DEPTH`
  -> 422. FastAPI would otherwise answer 400 for bad UTF-8, and a deeply nested document can
  exhaust the recursion limit in validation or error rendering (a 500); a U+0000 in the URL
  or a JSON string -> 422 ``INVALID_CHARACTER`` (``http.characters``). Checking here keeps
  every bad body a stable 4xx and guarantees the endpoint never ran.

The accepted body (at most the limit) is replayed to the application unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waybill.common.http.characters import json_has_nul, nul_problem, url_has_nul
from waybill.common.http.problems import Problem

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "PAYLOAD_TOO_LARGE",
        "Payload too large",
        f"The request body exceeds the limit of {limit} bytes.",
        {"max_bytes": limit},
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests containers more than ``limit`` levels deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def json_body_problem(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Problem | None:
    """The problem with a JSON request body, or None when it parses and is shallow enough."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Problem(
            422,
            "MALFORMED_JSON",
            "Malformed JSON",
            f"The body is not valid UTF-8 (byte {exc.start}).",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(
            422,
            "MALFORMED_JSON",
            "Malformed JSON",
            f"{exc.msg} at line {exc.lineno} column {exc.colno}.",
        )
    except RecursionError:
        return _too_deep(max_depth)
    # Cheap pre-check: a body with fewer brackets than the limit cannot nest too deep.
    if body.count(b"[") + body.count(b"{") > max_depth and json_depth_exceeds(value, max_depth):
        return _too_deep(max_depth)
    if json_has_nul(body, value):
        return nul_problem("JSON body")
    return None


def _too_deep(max_depth: int) -> Problem:
    return Problem(
        422,
        "JSON_TOO_DEEP",
        "JSON nested too deeply",
        f"JSON bodies may nest at most {max_depth} levels.",
        {"max_depth": max_depth},
    )


class BodyLimitMiddleware:
    """Reads the request body under a byte limit and vets JSON before the app sees it."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if url_has_nul(scope.get("path", ""), scope.get("query_string", b"")):
            await nul_problem("URL").send(send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes).send(send)
            return
        try:
            body, more = await self._read_body(receive)
        except BodyTooLarge:
            await _too_large(self.max_bytes).send(send)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if body and _is_json(content_type):
            problem = json_body_problem(body, max_depth=self.max_depth)
            if problem is not None:
                await problem.send(send)
                return
        await self.app(scope, _replay(body, more, receive), send)

    async def _read_body(self, receive: Receive) -> tuple[bytes, Message | None]:
        """The whole body, or BodyTooLarge the moment it passes the limit.

        Returns a non-body message (e.g. ``http.disconnect``) received instead, if any.
        """
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), message
            chunk: bytes = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if pending is not None:
                return pending
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
