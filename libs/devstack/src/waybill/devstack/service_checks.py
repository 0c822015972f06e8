"""Checks every service's tests run on its own code: the house rules of STYLE.md that a test
can read (errors meet HTTP once; the domain imports no client library; only the edge raises
HTTP problems). One copy here, so a new service's tests are three calls."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

CLIENT_LIBRARIES = ("httpx", "aiokafka", "sqlalchemy")


def error_codes(*bases: type) -> set[str]:
    """The ``code`` of each base and of every subclass below it."""
    found: set[str] = set()
    pending = list(bases)
    while pending:
        cls = pending.pop()
        found.add(str(cls.code))  # type: ignore[attr-defined]
        pending.extend(cls.__subclasses__())
    return found


def libraries_imported_by(
    modules: Iterable[str], libraries: Iterable[str] = CLIENT_LIBRARIES
) -> list[str]:
    """Which of ``libraries`` importing ``modules`` loads, in a fresh interpreter."""
    wanted = list(libraries)
    probe = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {wanted!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def modules_raising_problems(source: Path, edge: str = "api.py") -> list[str]:
    """Modules of a service's ``source`` tree, other than its HTTP edge, that name
    ``ProblemError`` (application code raises domain errors instead)."""
    return sorted(
        path.relative_to(source).as_posix()
        for path in source.rglob("*.py")
        if path.name != edge and "ProblemError" in path.read_text()
    )
