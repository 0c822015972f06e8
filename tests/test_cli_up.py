"""``waybill up`` end to end: the CLI starts real PostgreSQL, Kafka and service processes.

One ``waybill up`` runs for the session (``tests/up_stack.py``; starting Kafka is the slow
part); every test asks the ``stack`` fixture for it, which starts it again on the same state dir
if a test stopped it, so no test depends on another having run. Nothing here uses the fixed
default ports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from tests.up_stack import WaybillUp, alive, ready, wait_for

from waybill.cli.stack.state import UpRecord
from waybill.common import topics

pytestmark = pytest.mark.infra


def test_up_starts_from_an_empty_state_dir_and_orders_isready(stack: WaybillUp) -> None:
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

    after = wait_for(restarted, 30, "the supervisor to restart orders")
    assert isinstance(after, UpRecord)
    assert not alive(before.pid)
    wait_for(lambda: ready(before.url or ""), 60, "the restarted orders to be ready")
    assert "service_process_exited" in str(stack) and "exit_code=-9" in str(stack)


@pytest.mark.stops_stack
def test_ctrl_c_stops_every_process_it_started(stack: WaybillUp) -> None:
    record = stack.record()
    if record.server_url and not os.environ.get("WAYBILL_DATABASE_URL"):
        assert "postgres" in record.processes and "kafka" in record.processes
    started = set(record.all_pids()) | stack.descendants()

    exit_code = stack.interrupt()

    assert exit_code == 0, str(stack)
    left = sorted(pid for pid in started if alive(pid))
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
