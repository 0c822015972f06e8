"""``waybill bench memory``: resident memory of every process of the stack at idle.

Starts what ``waybill up`` starts (same ``Stack``), on free ports in a temporary state dir,
lets it idle, samples each process's RSS once a second and reports the peak per process
against the target (each service under 150 MiB at idle). Measured, never asserted in tests.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from waybill.cli.stack.lifecycle import Stack
from waybill.cli.stack.state import StateDir
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import free_port
from waybill.devstack.topology import SERVICES

SERVICE_TARGET_MIB = 150


def _rss_mib(pid: int | None, *, with_children: bool = False) -> float:
    """RSS of a process (and its children: PostgreSQL is one backend process per connection)."""
    if pid is None:
        return 0.0
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)] if with_children else [process]
        return sum(p.memory_info().rss for p in members) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def _sample(stack: Stack) -> dict[str, float]:
    rss = {service.name: _rss_mib(service.pid) for service in stack.services}
    if stack.kafka is not None:
        rss["kafka (JVM)"] = _rss_mib(stack.kafka.pid)
    if stack.postgres is not None:
        rss["postgres (all backends)"] = _rss_mib(stack.postgres.pid, with_children=True)
    return rss


def run(json_path: Path | None, console: Console, idle_s: float = 20.0) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="waybill-bench-memory-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    settings = WaybillSettings(state_dir=root, postgres_port=free_port(), kafka_port=free_port())
    environ = {**os.environ, **{spec.port_env: str(free_port()) for spec in SERVICES}}
    state = StateDir(root)
    state.create()
    stack = Stack(settings, state, environ=environ)
    peaks: dict[str, float] = {}
    try:
        with console.status("starting the stack") as status:
            stack.start(status.update)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("idling, sampling RSS", total=idle_s)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < idle_s:
                for name, mib in _sample(stack).items():
                    peaks[name] = max(peaks.get(name, 0.0), mib)
                progress.update(task, completed=elapsed)
                time.sleep(1.0)
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    services = {spec.name for spec in SERVICES}
    result = {
        "idle_s": idle_s,
        "peak_rss_mib": {name: round(mib, 1) for name, mib in peaks.items()},
        "service_target_mib": SERVICE_TARGET_MIB,
        "services_within_target": all(peaks[n] < SERVICE_TARGET_MIB for n in services),
        "machine": {
            "cpu_count": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        },
    }
    table = Table(title=f"waybill bench memory (peak RSS over {idle_s:.0f} s idle)")
    table.add_column("process")
    table.add_column("RSS MiB", justify="right")
    table.add_column("target", justify="right")
    for name, mib in result["peak_rss_mib"].items():
        target = f"< {SERVICE_TARGET_MIB}" if name in services else "-"
        mark = "" if name not in services else ("  ok" if mib < SERVICE_TARGET_MIB else "  over")
        table.add_row(name, f"{mib:,.1f}{mark}", target)
    console.print(table)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"results written to {json_path}")
    return result
