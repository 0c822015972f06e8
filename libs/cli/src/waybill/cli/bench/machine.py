"""The machine a benchmark ran on, recorded beside its figures (they mean little without it)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import psutil


def machine_facts() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and platform of this machine."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of a process, its reaped children and its live descendants.

    PostgreSQL runs a backend process per connection; the postmaster reaps them, so a
    backend's time moves from "live descendant" to the postmaster's ``children_*`` and the
    sum stays monotonic across connection churn.
    """
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = float(times.user + times.system + times.children_user + times.children_system)
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0
