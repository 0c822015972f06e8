"""``waybill up`` end to end: the CLI starts real PostgreSQL, Kafka and service processes.

One ``waybill up`` runs for the module (starting Kafka is the slow part); every test asks the
``stack`` fixture for it, which starts it again on the same state dir if a test stopped it, so
no test depends on another having run. Nothing here uses the fixed default ports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer

from waybill.cli.stack.state import StateDir, UpRecord
from waybill.common import topics
from waybill.devstack.testing import eventually_sync
from waybill.devstack.topology import SERVICES

pytestmark = pytest.mark.infra

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(*, with_next: bool = False) -> int:
    """A free port; with ``with_next`` also port + 1 (the embedded Kafka's controller port)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not with_next or (port < 65535 and _port_free(port + 1)):
            return port


def _wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    return eventually_sync(condition, timeout_s=timeout_s, interval_s=0.2, what=what)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class WaybillUp:
    """A ``waybill up`` subprocess on a temporary state dir and free ports."""

    def __init__(self, root: Path) -> None:
        self.state = StateDir(root / "state")
        self.output = root / "waybill-up.out"
        self.env = {**os.environ, "WAYBILL_STATE_DIR": str(self.state.root)}
        self.env["WAYBILL_POSTGRES_PORT"] = str(_free_port())
        self.env["WAYBILL_KAFKA_PORT"] = str(_free_port(with_next=True))
        for spec in SERVICES:
            self.env[spec.port_env] = str(_free_port())
            for listener in spec.listeners:  # the sandbox's SMTP server
                self.env[listener.setting] = str(_free_port())
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
        _wait_for(self._running_record, START_TIMEOUT_S, f"waybill up to be running:\n{self}")

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
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def __str__(self) -> str:
        try:
            return self.output.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no output)"


@pytest.fixture(scope="module")
def _waybill_up() -> Iterator[WaybillUp]:
    # Not pytest's tmp_path: its 0700 parents would keep out the unprivileged user the embedded
    # PostgreSQL runs as when the suite runs as root.
    root = Path(tempfile.mkdtemp(prefix="waybill-up-test-"))
    root.chmod(0o755)
    up = WaybillUp(root)
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


def test_up_starts_from_an_empty_state_dir_and_orders_is_ready(stack: WaybillUp) -> None:
    record = stack.record()
    orders = record.processes["orders"]
    assert orders.url == f"http://127.0.0.1:{stack.env['WAYBILL_ORDERS_PORT']}"
    response = httpx.get(f"{orders.url}/health/ready", timeout=5)
    assert response.status_code == 200, response.text
    assert stack.state.log_path("orders").exists()
    assert "admin key (tenant default): " in str(stack)


async def test_an_order_placed_over_http_appears_on_the_orders_topic(stack: WaybillUp) -> None:
    record = stack.record()
    orders_url = record.processes["orders"].url
    tenant = f"t_{uuid.uuid4().hex[:12]}"
    admin_key = stack.issue_key(tenant, "admin")
    service_key = stack.issue_key(tenant, "service")
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=orders_url, timeout=10) as client:
        stocked = await client.put(
            f"/inventory/{sku}",
            json={"available": 5},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert stocked.status_code == 200, stocked.text
        placed = await client.post(
            "/orders",
            json={
                "customer": {"id": "c1", "email": "c1@example.com"},
                "items": [{"sku": sku, "quantity": 2, "unit_price_cents": 1250}],
                "currency": "USD",
                "shipping_address": {
                    "line1": "1 Main St",
                    "city": "Springfield",
                    "postal_code": "12345",
                    "country": "US",
                },
                "payment_method": "pm_card_ok",
            },
            headers={"Authorization": f"Bearer {service_key}"},
        )
        assert placed.status_code == 201, placed.text
    order_id: str = placed.json()["id"]

    consumer = AIOKafkaConsumer(
        topics.ORDERS_EVENTS,
        bootstrap_servers=record.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        found_types: list[str] = []
        while time.monotonic() < deadline and "order.placed" not in found_types:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    headers = {k: v.decode() for k, v in rec.headers}
                    mentions = [rec.key or b"", rec.value or b"", headers.get("ce_subject", "")]
                    if any(
                        order_id in (m.decode() if isinstance(m, bytes) else m) for m in mentions
                    ):
                        found_types.append(headers.get("ce_type", ""))
    finally:
        await consumer.stop()
    assert "order.placed" in found_types, f"no order.placed for {order_id} on the topic"


def test_load_with_agents_runs_every_paid_order_on_to_delivered(
    stack: WaybillUp, tmp_path: Path
) -> None:
    assert "shipping" in stack.record().processes
    summary = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "waybill.cli.main",
            "load",
            "--rate",
            "5",
            "--duration",
            "2",
            "--mix",
            "ok=1",
            "--agents",
            "2",
            "--drain",
            "60",
            "--json",
            str(summary),
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    outcome = json.loads(summary.read_text())
    paid = outcome["kinds"]["all"]["paid"]
    assert paid == outcome["kinds"]["all"]["placed"] > 0
    assert outcome["delivery"]["delivered"] == paid, outcome["delivery"]
    assert "delivery agents:" in result.stdout


def test_a_killed_orders_process_is_restarted_by_the_supervisor(stack: WaybillUp) -> None:
    before = stack.record().processes["orders"]
    assert before.pid is not None
    os.kill(before.pid, signal.SIGKILL)

    def restarted() -> UpRecord | None:
        after = stack.record()
        orders = after.processes["orders"]
        return after if orders.pid != before.pid and orders.restarts > before.restarts else None

    after = _wait_for(restarted, 30, "the supervisor to restart orders")
    assert isinstance(after, UpRecord)
    assert not _alive(before.pid)
    _wait_for(lambda: _ready(before.url or ""), 60, "the restarted orders to be ready")
    assert "service_process_exited" in str(stack) and "exit_code=-9" in str(stack)


def test_ctrl_c_stops_every_process_it_started(stack: WaybillUp) -> None:
    record = stack.record()
    if record.server_url and not os.environ.get("WAYBILL_DATABASE_URL"):
        assert "postgres" in record.processes and "kafka" in record.processes
    started = set(record.all_pids()) | stack.descendants()

    exit_code = stack.interrupt()

    assert exit_code == 0, str(stack)
    left = sorted(pid for pid in started if _alive(pid))
    assert left == [], f"processes left behind: {left}"
    final = stack.state.read_up()
    assert final is not None and final.status == "stopped"


def test_keys_create_without_a_running_stack_exits_non_zero(tmp_path: Path) -> None:
    env = {**os.environ, "WAYBILL_STATE_DIR": str(tmp_path)}
    env.pop("WAYBILL_DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "waybill.cli.main",
            "keys",
            "create",
            "--tenant",
            "t",
            "--role",
            "admin",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no Waybill stack is running" in result.stderr
    assert "key:" not in result.stdout


def test_keys_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "waybill.cli.main",
            "keys",
            "create",
            "--tenant",
            "t",
            "--role",
            "root",
        ],
        env={**os.environ, "WAYBILL_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "service, agent, admin" in result.stderr
