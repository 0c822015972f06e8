"""``waybill up``: start the stack with visible progress, print where it is, supervise it.

Ctrl-C or SIGTERM stops everything this process started, by PID, and exits 0.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import structlog
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from waybill.cli.stack.lifecycle import Stack, StartupFailed
from waybill.cli.stack.state import StateDir, running_stack
from waybill.cli.stack.supervisor import Supervisor
from waybill.common.settings import WaybillSettings
from waybill.devstack.topology import SERVICES, ServiceSpec

log = structlog.get_logger("waybill.cli.stack.up")

DEFAULT_TENANT = "default"


class StartupProgress:
    """One line per startup step: a spinner on a terminal, plain lines in a captured log."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        task = self.progress.add_task(title, total=1)
        started = time.monotonic()

        def detail(text: str) -> None:
            self.progress.update(task, description=f"{title}: {text}")

        yield detail
        elapsed = time.monotonic() - started
        self.progress.update(task, completed=1, description=f"[green]✓[/] {title}")
        if not self.console.is_terminal:
            self.console.print(f"✓ {title} ({elapsed:.1f}s)")

    def __enter__(self) -> StartupProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _start(stack: Stack, console: Console) -> None:
    with StartupProgress(console) as progress:
        steps: list[tuple[str, Callable[[Callable[[str], None]], object]]] = [
            ("PostgreSQL", stack.start_postgres),
            ("Apache Kafka", stack.start_kafka),
            ("databases", stack.create_databases),
            ("topics", stack.create_topics),
            ("auth schema", stack.ensure_auth_schema),
        ]
        for title, run in steps:
            with progress.step(title) as detail:
                run(detail)
        with progress.step("services: " + ", ".join(s.name for s in stack.specs)) as detail:
            stack.start_services()
            stack.state.write_up(stack.record("starting"))
            stack.wait_services_ready(detail)


def _issue_default_keys(stack: Stack) -> list[tuple[str, str]]:
    import asyncio

    from waybill.common.auth import issue_key

    settings = stack.child_settings()

    async def issue() -> list[tuple[str, str]]:
        admin = await issue_key(settings, tenant_id=DEFAULT_TENANT, role="admin")
        service = await issue_key(settings, tenant_id=DEFAULT_TENANT, role="service")
        return [("admin", admin.key), ("service", service.key)]

    return asyncio.run(issue())


def _print_summary(console: Console, stack: Stack, keys: list[tuple[str, str]]) -> None:
    table = Table(title="Waybill is up", title_justify="left")
    table.add_column("name")
    table.add_column("url")
    table.add_column("pid", justify="right")
    table.add_column("log")
    record = stack.record("running")
    for name, proc in record.processes.items():
        table.add_row(name, proc.url or "", str(proc.pid or ""), proc.log)
    console.print(table)
    monitor = stack.monitor_url or "(monitor: coming in a later release)"
    console.print(f"dashboard: {monitor}")
    console.print(f"state dir: {stack.state.root}  (stack description: {stack.state.up_file})")
    # Keys on their own lines, last token, never wrapped: easy to copy and to parse.
    for role, key in keys:
        console.print(f"{role} key (tenant {DEFAULT_TENANT}): {key}", overflow="ignore", crop=False)
    console.print("Ctrl-C stops everything.")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        output = exc.stderr or exc.stdout or b""
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        return f"{exc}\n{text.strip()}"
    return str(exc)


def run_up(
    settings: WaybillSettings,
    *,
    fresh: bool,
    console: Console,
    specs: tuple[ServiceSpec, ...] = SERVICES,
) -> int:
    """Start, supervise, stop. Returns the exit code."""
    state = StateDir(settings.state_dir)
    existing = running_stack(state)
    if existing is not None:
        console.print(
            f"[red]A stack is already running with state dir {state.root} "
            f"(waybill up pid {existing.pid}).[/]"
        )
        return 1
    if fresh:
        state.wipe()
    state.create()
    stack = Stack(settings, state, specs=specs)
    # Ctrl-C and SIGTERM both mean "stop everything". SIGINT is set explicitly: a shell that
    # starts us in the background hands us SIGINT ignored, and Python keeps it that way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    exit_code = 0
    try:
        _start(stack, console)
        keys = _issue_default_keys(stack)
        stack.state.write_up(stack.record("running"))
        _print_summary(console, stack, keys)
        supervisor = Supervisor(
            stack.services, on_change=lambda: state.write_up(stack.record("running"))
        )
        supervisor.run_forever()
    except KeyboardInterrupt:
        console.print("stopping (services, then Kafka, then PostgreSQL)…")
    except (StartupFailed, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        # Startup problems (port taken, broken service, stale server) end in a message, not a
        # traceback; whatever did start is still stopped below.
        console.print("[red]waybill up failed:[/]")
        console.print(_describe(exc), markup=False)
        exit_code = 1
    finally:
        # Nothing may interrupt the stop: a second Ctrl-C would leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        final = stack.record("stopping")
        state.write_up(final)
        stack.stop(lambda what: log.info("stack_stop_progress", step=what))
        final.status = "stopped"
        state.write_up(final)
        log.info("stack_stop_completed", state_dir=str(state.root))
    return exit_code
