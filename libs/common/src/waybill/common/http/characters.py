"""U+0000 is refused at the edge: 422 ``INVALID_CHARACTER``, never a 500 from the database.

PostgreSQL's ``text`` and ``jsonb`` cannot hold a NUL character, so a request carrying one in
its path, query string or a JSON string reached the database and failed there (a 500, found by
the fuzzer in ``.ci/fuzz``). Checked before any handler runs, cheaply: a byte search on the
raw query string and body first, the decoded JSON walked only when its text holds ``\\u0000``.
"""

from __future__ import annotations

from typing import Any

from waybill.common.http.problems import Problem

CODE = "INVALID_CHARACTER"


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def json_has_nul(body: bytes, value: Any) -> bool:
    """True when the decoded JSON ``value`` of ``body`` holds U+0000 in a key or string."""
    return b"\\u0000" in body and _has_nul(value)


def url_has_nul(path: str, query_string: bytes) -> bool:
    return "\x00" in path or b"%00" in query_string or b"\x00" in query_string


def nul_problem(where: str) -> Problem:
    return Problem(
        422,
        CODE,
        "Invalid character",
        f"The {where} contains U+0000 (NUL), which no text here may contain.",
    )
