"""The kit's own answers, declared in every service's OpenAPI document.

FastAPI documents what a route declares; the answers the kit gives around the route were left
to a generic ``4XX``/``5XX``, and its 422 was documented with FastAPI's ``{"detail": [...]}``
shape, which the kit never sends. :func:`declare_kit_responses` adds to each operation what
the kit can answer there, each with its problem ``code``s and the problem+json schema:

* 422 ``VALIDATION_ERROR`` and ``INVALID_CHARACTER`` (U+0000) wherever input is read; with a
  body, also ``MALFORMED_JSON`` and ``JSON_TOO_DEEP``, and 413 ``PAYLOAD_TOO_LARGE``; with a
  ``cursor`` parameter, ``INVALID_CURSOR``;
* 401 ``UNAUTHENTICATED``, 403 ``FORBIDDEN`` and 503 ``AUTH_UNAVAILABLE`` on operations that
  take an API key;
* 503 ``DATABASE_UNAVAILABLE`` (``http.unavailable``) and 500 ``INTERNAL_ERROR`` everywhere.

A route's own declaration of a status is kept; the kit's codes are appended to its
description. Operations whose errors are not problem+json (the sandbox's Stripe-like API
declares its own ``4XX``) are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from waybill.common.http.problems import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable upper-snake `code`",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": ["string", "null"]},
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_TITLES = {
    401: "Missing, unknown or revoked API key",
    403: "The key's role may not do this",
    413: "Body over the size limit",
    422: "The request does not match the schema",
    500: "Unexpected error (a bug)",
    503: "A dependency is unavailable; retry after `Retry-After` seconds",
}
_METHODS = ("get", "put", "post", "delete", "patch")


def _kit_codes(operation: dict[str, Any]) -> dict[int, list[str]]:
    codes: dict[int, list[str]] = {500: ["INTERNAL_ERROR"], 503: ["DATABASE_UNAVAILABLE"]}
    params = {p.get("name") for p in operation.get("parameters", [])}
    if params or "requestBody" in operation:
        codes[422] = ["VALIDATION_ERROR", "INVALID_CHARACTER"]
    if "requestBody" in operation:
        codes[422] += ["MALFORMED_JSON", "JSON_TOO_DEEP"]
        codes[413] = ["PAYLOAD_TOO_LARGE"]
    if "cursor" in params:
        codes.setdefault(422, []).append("INVALID_CURSOR")
    if operation.get("security"):
        codes[401] = ["UNAUTHENTICATED"]
        codes[403] = ["FORBIDDEN"]
        codes[503].append("AUTH_UNAVAILABLE")
    return codes


def _speaks_problems(operation: dict[str, Any]) -> bool:
    generic = operation.get("responses", {}).get("4XX", {})
    return PROBLEM_CONTENT_TYPE in generic.get("content", {PROBLEM_CONTENT_TYPE: {}})


_FASTAPI_422 = "Validation Error"


def problem_responses(codes: Mapping[int, Sequence[str]]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the domain problem codes it can answer, by status (the kit
    adds its own codes to the same statuses)."""
    return {
        status: {
            "description": "codes: " + ", ".join(f"`{code}`" for code in listed),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status, listed in codes.items()
    }


def _declare(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, codes in sorted(_kit_codes(operation).items()):
        listed = ", ".join(f"`{code}`" for code in codes)
        existing = responses.get(str(status))
        if existing is None or existing.get("description") == _FASTAPI_422:
            responses[str(status)] = {"description": f"{_TITLES[status]} (codes: {listed})"}
        else:  # the route declared this status: keep its codes, add the kit's
            existing["description"] = f"{existing['description']}, {listed}"
        responses[str(status)]["content"] = {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}
    for generic in ("4XX", "5XX"):
        if generic in responses:
            responses[generic]["content"] = {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}


def declare_kit_responses(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the kit's answers on every operation (built once)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path_item in document.get("paths", {}).values():
            for method in _METHODS:
                operation = path_item.get(method)
                if operation is not None and _speaks_problems(operation):
                    _declare(operation)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for unused in ("HTTPValidationError", "ValidationError"):  # unless still referenced
            if f"#/components/schemas/{unused}" not in json.dumps(document):
                schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
