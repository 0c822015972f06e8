"""``WAYBILL_TEST_INFRA=testcontainers`` on a machine without a Docker engine: a pytest run of
a test that needs the servers reports it skipped, with the reason (and starts no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from waybill.devstack.infra.containers import docker_problem

ROOT = Path(__file__).resolve().parents[4]
NEEDS_SERVERS = "libs/common/tests/integration/test_migrate_command.py"


def test_without_an_engine_the_servers_tests_are_skipped_saying_why():
    if docker_problem() is None:
        pytest.skip("a Docker engine answers here: the containers would really start")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("WAYBILL_DATABASE_URL", "WAYBILL_KAFKA_BOOTSTRAP_SERVERS")
    }
    env["WAYBILL_TEST_INFRA"] = "testcontainers"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", NEEDS_SERVERS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 skipped" in done.stdout, done.stdout
    assert "WAYBILL_TEST_INFRA=testcontainers but no Docker engine answers" in done.stdout
