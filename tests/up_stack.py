"""Pytest plugin: one ``waybill up`` for the session, on a temporary state dir and free ports.

The CLI starts real PostgreSQL, Kafka and every service process, as a user's laptop would. The
``stack`` fixture starts it again on the same state dir if a test stopped it (the Ctrl-C test
does), so no test depends on another having run. Its services run with the test poison switch
on (``WAYBILL_TEST_POISON=1``) and export their spans to an OTLP receiver of the session
(``WaybillUp.traces``, batched every ``OTEL_BSP_SCHEDULE_DELAY`` ms).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from waybill.cli.stack.state import StateDir, UpRecord
from waybill.common.auth import issue_key
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra.network import free_port, free_port_pair
from waybill.devstack.otlp_receiver import OtlpReceiver, otlp_receiver
from waybill.devstack.testing import eventually_sync
from waybill.devstack.topology import SERVICES

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
# Spans reach the receiver this many ms after they end (the SDK's default is 5000).
SPAN_EXPORT_DELAY_MS = 200


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    return eventually_sync(condition, timeout_s=timeout_s, interval_s=0.2, what=what)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class WaybillUp:
    """A ``waybill up`` subprocess on a temporary state dir and free ports."""

    def __init__(self, root: Path, traces: OtlpReceiver) -> None:
        self.state = StateDir(root / "state")
        self.traces = traces
        self.output = root / "waybill-up.out"
        self.env = {**os.environ, "WAYBILL_STATE_DIR": str(self.state.root)}
        # The test poison switch (``waybill.common.consumer.poison``): harmless to every test
        # that sends no ``__poison__`` key, and what the monitor's poison tests need.
        self.env["WAYBILL_TEST_POISON"] = "1"
        self.env["WAYBILL_OTEL_EXPORTER_OTLP_ENDPOINT"] = traces.url
        self.env["OTEL_BSP_SCHEDULE_DELAY"] = str(SPAN_EXPORT_DELAY_MS)
        self.env["WAYBILL_POSTGRES_PORT"] = str(free_port())
        self.env["WAYBILL_KAFKA_PORT"] = str(free_port_pair())
        for spec in SERVICES:
            self.env[spec.port_env] = str(free_port())
            for listener in spec.listeners:  # the sandbox's SMTP server
                self.env[listener.setting] = str(free_port())
        self.popen: subprocess.Popen[bytes] | None = None
        self.seen_pids: set[int] = set()

    def waybill(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "waybill.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def issue_key(self, tenant: str, role: str) -> str:
        result = self.waybill("keys", "create", "--tenant", tenant, "--role", role)
        assert result.returncode == 0, result.stderr + result.stdout
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith("key:"))
        return line.split()[-1]

    async def new_key(self, tenant: str, role: str) -> str:
        """A key issued straight in the stack's auth database (``issue_key`` runs the CLI: a
        few seconds of interpreter start per key on a small machine)."""
        settings = WaybillSettings(database_url=self.record().server_url)
        return (await issue_key(settings, tenant_id=tenant, role=role)).key

    def url(self, service: str) -> str:
        """The base URL of one of the stack's services."""
        url = self.record().processes[service].url
        assert url, f"{service} has no URL in the stack's record"
        return url

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, *, fresh: bool) -> None:
        args = ["up", "--state-dir", str(self.state.root), *(["--fresh"] if fresh else [])]
        with open(self.output, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "waybill.cli.main", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._running_record, START_TIMEOUT_S, f"waybill up to be running:\n{self}")

    def _running_record(self) -> UpRecord | None:
        if self.popen is not None and self.popen.poll() is not None:
            raise AssertionError(f"waybill up exited with {self.popen.returncode}:\n{self}")
        record = self.state.read_up()
        if record is None or record.status != "running" or record.pid != self.popen.pid:  # type: ignore[union-attr]
            return None
        return record

    def record(self) -> UpRecord:
        record = self.state.read_up()
        assert record is not None
        self.seen_pids.update(record.all_pids())
        return record

    def descendants(self) -> set[int]:
        assert self.popen is not None
        try:
            children = psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return set()
        return {child.pid for child in children}

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the ``waybill up`` process only; returns its exit code."""
        assert self.popen is not None
        self.seen_pids.update(self.record().all_pids())
        self.seen_pids.update(self.descendants())
        self.popen.send_signal(signal.SIGINT)
        return self.popen.wait(timeout=STOP_TIMEOUT_S)

    def force_cleanup(self) -> None:
        """Last resort after a failed test: kill what is left, by PID."""
        if self.is_running():
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.popen.kill()  # type: ignore[union-attr]
        for pid in self.seen_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    def __str__(self) -> str:
        try:
            return self.output.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no output)"


@pytest.fixture(scope="session")
def _waybill_up() -> Iterator[WaybillUp]:
    # Not pytest's tmp_path: its 0700 parents would keep out the unprivileged user the embedded
    # PostgreSQL runs as when the suite runs as root.
    root = Path(tempfile.mkdtemp(prefix="waybill-up-test-"))
    root.chmod(0o755)
    with otlp_receiver() as traces:
        up = WaybillUp(root, traces)
        try:
            yield up
        finally:
            up.force_cleanup()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stack(_waybill_up: WaybillUp) -> WaybillUp:
    if not _waybill_up.is_running():
        _waybill_up.start(fresh=_waybill_up.popen is None)
    return _waybill_up


def _uses_our_stack(item: pytest.Item) -> bool:
    """``item`` asks for this plugin's ``stack`` (other modules have fixtures of that name)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("stack", ()) if info is not None else ()
    return bool(definitions) and definitions[-1].func.__module__ == __name__


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of the session's ``waybill up`` run one after another, from where the first of
    them was collected, the ones that stop it last: one start of the stack serves them all, and
    it is stopped (the Ctrl-C test) before the rest of the suite runs."""
    users = [item for item in items if _uses_our_stack(item)]
    if not users:
        return
    chosen = set(map(id, users))
    first = items.index(users[0])
    others = [item for item in items if id(item) not in chosen]
    users.sort(key=lambda item: item.get_closest_marker("stops_stack") is not None)
    items[:] = others[:first] + users + others[first:]
